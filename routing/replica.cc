#include "routing/replica.h"

#include "cairn/errors.h"
#include "cairn/forwarding_store.h"
#include "layers/grpc/grpc_store.h"

namespace cairn {

namespace {

// Runs a call on the stack inline and answers at once.
class InlineReplica final : public Replica {
 public:
  explicit InlineReplica(std::shared_ptr<Store> stack)
      : stack_(std::move(stack)), grpc_(find_layer<GrpcStore>(*stack_)) {}

  void get(std::string_view key, Done<std::vector<Versioned>> done) override {
    run(done, [&] { return stack_->get(key); });
  }
  void get_all(std::vector<std::string> keys, Done<Map> done) override {
    run(done, [&] { return stack_->get_all(keys); });
  }
  void versions(std::string_view key, Done<std::vector<VectorClock>> done) override {
    run(done, [&] { return stack_->versions(key); });
  }
  void put(std::string_view key, const Versioned& value, Done<PutResult> done) override {
    run(done, [&] { return stack_->put(key, value); });
  }
  void remove(std::string_view key, const VectorClock& version, Done<bool> done) override {
    run(done, [&] { return stack_->remove(key, version); });
  }
  // A stack that reaches its node over the network (layers over a grpc
  // engine) asks the node; a local engine is always there.
  void probe(std::function<void(std::exception_ptr)> done) override {
    if (grpc_ == nullptr) return done(nullptr);
    try {
      grpc_->async_probe(done);
    } catch (...) {
      done(std::current_exception());
    }
  }
  void put_hint(const Hint&, std::function<void(std::exception_ptr)> done) override {
    done(std::make_exception_ptr(Unsupported("a local replica keeps no hints for others")));
  }
  bool remote() const override { return false; }
  Store& store() override { return *stack_; }

 private:
  template <typename T, typename Fn>
  static void run(const Done<T>& done, Fn&& fn) {
    T result{};
    std::exception_ptr error;
    try {
      result = fn();
    } catch (...) {
      error = std::current_exception();
    }
    done(std::move(result), error);
  }

  std::shared_ptr<Store> stack_;
  GrpcStore* grpc_;  // the grpc engine under the stack's layers, if any
};

// Calls a grpc engine's callback API.
class RemoteReplica final : public Replica {
 public:
  explicit RemoteReplica(std::shared_ptr<Store> stack)
      : stack_(std::move(stack)), grpc_(dynamic_cast<GrpcStore*>(stack_.get())) {}

  void get(std::string_view key, Done<std::vector<Versioned>> done) override {
    start(done, [&] { grpc_->async_get(key, done); });
  }
  void get_all(std::vector<std::string> keys, Done<Map> done) override {
    start(done, [&] { grpc_->async_get_all(std::move(keys), done); });
  }
  void versions(std::string_view key, Done<std::vector<VectorClock>> done) override {
    start(done, [&] { grpc_->async_versions(key, done); });
  }
  void put(std::string_view key, const Versioned& value, Done<PutResult> done) override {
    start(done, [&] { grpc_->async_put(key, value, done); });
  }
  void remove(std::string_view key, const VectorClock& version, Done<bool> done) override {
    start(done, [&] { grpc_->async_remove(key, version, done); });
  }
  void probe(std::function<void(std::exception_ptr)> done) override {
    try {
      grpc_->async_probe(done);
    } catch (...) {
      done(std::current_exception());
    }
  }
  void put_hint(const Hint& hint, std::function<void(std::exception_ptr)> done) override {
    try {
      grpc_->async_put_hint(hint, done);
    } catch (...) {
      done(std::current_exception());
    }
  }
  bool remote() const override { return true; }
  Store& store() override { return *stack_; }

 private:
  // A call that cannot start (the store is closed) answers with the error
  // instead, so every call answers exactly once.
  template <typename T, typename Fn>
  static void start(const Done<T>& done, Fn&& fn) {
    try {
      fn();
    } catch (...) {
      done(T{}, std::current_exception());
    }
  }

  std::shared_ptr<Store> stack_;
  GrpcStore* grpc_;
};

}  // namespace

std::unique_ptr<Store> open_node_replica(const std::string& address, const std::string& store,
                                         std::chrono::milliseconds timeout, const ServerTls& tls) {
  GrpcOptions o;
  o.store = store;
  o.targets = {address};
  o.replica = true;
  o.timeout = timeout;
  o.retries = 0;
  o.tls_ca = tls.ca;
  o.tls_cert = tls.cert;
  o.tls_key = tls.key;
  return std::make_unique<GrpcStore>(std::move(o));
}

std::unique_ptr<Replica> make_replica(std::shared_ptr<Store> stack) {
  if (dynamic_cast<GrpcStore*>(stack.get()) != nullptr) {
    return std::make_unique<RemoteReplica>(std::move(stack));
  }
  return std::make_unique<InlineReplica>(std::move(stack));
}

}  // namespace cairn
