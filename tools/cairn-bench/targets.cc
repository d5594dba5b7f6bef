#include "tools/cairn-bench/targets.h"

#include <grpcpp/grpcpp.h>
#include <hiredis/hiredis.h>
#include <libmemcached/memcached.h>

#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "cairn/config.h"
#include "cairn/errors.h"
#include "cairn/versioned.h"
#include "layers/grpc/cairn.grpc.pb.h"
#include "layers/grpc/grpc_store.h"
#include "layers/grpc/wire.h"

namespace cairn::bench {

namespace {

std::pair<std::string, int> split_address(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) throw std::invalid_argument(address + " is not HOST:PORT");
  int port = 0;
  try {
    port = std::stoi(address.substr(colon + 1));
  } catch (const std::exception&) {
    throw std::invalid_argument(address + " is not HOST:PORT");
  }
  return {address.substr(0, colon), port};
}

// The operation a depth-1 connection holds until receive() runs it.
struct Pending {
  uint32_t slot;
  std::string key;
  std::string value;
  bool put;
};

Versioned next_version(const std::string& value, std::atomic<uint64_t>* clock) {
  return Versioned{value, VectorClock({{0, clock->fetch_add(1, std::memory_order_relaxed)}},
                                      now_ms())};
}

// ---- cairn, unary calls through GrpcStore -----------------------------------

// Also drives any stack a config builds (a routing client) with --depth 1.
class CairnUnary final : public Connection {
 public:
  CairnUnary(std::unique_ptr<Store> store, int depth, std::atomic<uint64_t>* clock)
      : depth_(depth), clock_(clock), store_(std::move(store)) {
    grpc_ = dynamic_cast<GrpcStore*>(store_.get());
    if (depth_ > 1 && grpc_ == nullptr) {
      throw std::invalid_argument("--depth above 1 needs a cairn:// target");
    }
    store_->get("cairn-bench-ping");  // fails here if the server is not there
  }

  void send_get(const std::string& key, uint32_t slot) override {
    if (depth_ == 1) {
      pending_ = {slot, key, "", false};
      return;
    }
    grpc_->async_get(key, [this, slot](std::vector<Versioned> v, std::exception_ptr e) {
      complete(slot, e, v.empty());
    });
  }

  void send_put(const std::string& key, const std::string& value, uint32_t slot) override {
    if (depth_ == 1) {
      pending_ = {slot, key, value, true};
      return;
    }
    grpc_->async_put(key, next_version(value, clock_),
                      [this, slot](PutReply r, std::exception_ptr e) {
                        complete(slot, e, false, r.result == PutResult::kObsolete);
                      });
  }

  uint32_t receive() override {
    if (depth_ == 1) {
      // The blocking call: what a caller of the client store does.
      if (pending_.put) {
        if (store_->put(pending_.key, next_version(pending_.value, clock_)) ==
            PutResult::kObsolete) {
          ++obsolete;
        }
      } else if (store_->get(pending_.key).empty()) {
        ++misses;
      }
      return pending_.slot;
    }
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return !done_.empty(); });
    const Done d = done_.front();
    done_.pop_front();
    if (d.error) std::rethrow_exception(d.error);
    misses += d.miss ? 1 : 0;
    obsolete += d.obsolete ? 1 : 0;
    return d.slot;
  }

 private:
  struct Done {
    uint32_t slot;
    std::exception_ptr error;
    bool miss;
    bool obsolete;
  };

  void complete(uint32_t slot, std::exception_ptr e, bool miss, bool obs = false) {
    {
      std::lock_guard lock(mu_);
      done_.push_back({slot, e, miss, obs});
    }
    cv_.notify_one();
  }

  const int depth_;
  std::atomic<uint64_t>* clock_;
  Pending pending_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Done> done_;
  // Last: destroyed first, it waits for the callbacks still in flight,
  // which use the members above.
  std::unique_ptr<Store> store_;
  GrpcStore* grpc_ = nullptr;  // store_, when it is a grpc engine
};

// ---- cairn, the Stream RPC --------------------------------------------------

// Requests wait in a batch until the thread must block for a response;
// then the batch goes out as one message. Responses arrive in batches too,
// and are handed out one at a time before the next read.
class CairnStream final : public Connection {
 public:
  CairnStream(const Target& t, std::atomic<uint64_t>* clock) : store_(t.store), clock_(clock) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    args.SetMaxReceiveMessageSize(64 << 20);  // the server's default limit
    args.SetMaxSendMessageSize(64 << 20);
    channel_ = grpc::CreateCustomChannel(t.address, grpc::InsecureChannelCredentials(), args);
    if (!channel_->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(5))) {
      throw std::runtime_error("cannot connect to cairn at " + t.address);
    }
    stub_ = rpc::Store::NewStub(channel_);
    // A server with a security policy: the caller's token (docs/security.md).
    if (const char* token = std::getenv("CAIRN_TOKEN"); token != nullptr) {
      context_.AddMetadata("authorization", std::string("Bearer ") + token);
    }
    stream_ = stub_->Stream(&context_);
  }

  ~CairnStream() override {
    stream_->WritesDone();
    rpc::StreamResponses ignored;
    while (stream_->Read(&ignored)) {
    }
    stream_->Finish();
  }

  void send_get(const std::string& key, uint32_t slot) override {
    rpc::StreamRequest* req = batch_.add_requests();
    req->set_id(slot);
    rpc::GetRequest* get = req->mutable_get();
    get->set_store(store_);
    get->set_key(key);
  }

  void send_put(const std::string& key, const std::string& value, uint32_t slot) override {
    rpc::StreamRequest* req = batch_.add_requests();
    req->set_id(slot);
    rpc::PutRequest* put = req->mutable_put();
    put->set_store(store_);
    put->set_key(key);
    internal::to_wire(next_version(value, clock_), put->mutable_version());
  }

  uint32_t receive() override {
    if (next_ == responses_.responses_size()) {
      if (batch_.requests_size() > 0) {
        if (!stream_->Write(batch_)) throw std::runtime_error("the stream broke");
        batch_.Clear();
      }
      if (!stream_->Read(&responses_)) {
        const grpc::Status st = stream_->Finish();
        throw std::runtime_error("the stream ended: " + st.error_message());
      }
      next_ = 0;
    }
    const rpc::StreamResponse& r = responses_.responses(next_++);
    switch (r.result_case()) {
      case rpc::StreamResponse::kError:
        throw std::runtime_error("cairn: " + r.error().message());
      case rpc::StreamResponse::kGet:
        misses += r.get().versions_size() == 0 ? 1 : 0;
        break;
      case rpc::StreamResponse::kPut:
        obsolete += r.put().obsolete() ? 1 : 0;
        break;
      default:
        throw std::runtime_error("cairn: an unexpected response");
    }
    return static_cast<uint32_t>(r.id());
  }

 private:
  std::string store_;
  std::atomic<uint64_t>* clock_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<rpc::Store::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<rpc::StreamRequests, rpc::StreamResponses>> stream_;
  rpc::StreamRequests batch_;         // not sent yet
  rpc::StreamResponses responses_;    // the last read
  int next_ = 0;                      // the next of responses_ to hand out
};

// ---- redis-server, through hiredis (pipelined up to the depth) --------------

class Redis final : public Connection {
 public:
  explicit Redis(const Target& t) {
    const auto [host, port] = split_address(t.address);
    timeval timeout{5, 0};
    c_ = redisConnectWithTimeout(host.c_str(), port, timeout);
    if (c_ == nullptr || c_->err) {
      const std::string why = c_ != nullptr ? c_->errstr : "out of memory";
      if (c_ != nullptr) redisFree(c_);
      throw std::runtime_error("cannot connect to redis at " + t.address + ": " + why);
    }
    if (t.select_store) {  // cairn's RESP front: SELECT takes a store's name
      auto* r = static_cast<redisReply*>(
          redisCommand(c_, "SELECT %b", t.store.data(), t.store.size()));
      const bool ok = r != nullptr && r->type == REDIS_REPLY_STATUS;
      const std::string why = r == nullptr ? c_->errstr : std::string(r->str, r->len);
      if (r != nullptr) freeReplyObject(r);
      if (!ok) {
        redisFree(c_);
        throw std::runtime_error("SELECT " + t.store + " at " + t.address + ": " + why);
      }
    }
  }
  ~Redis() override { redisFree(c_); }

  void send_get(const std::string& key, uint32_t slot) override {
    redisAppendCommand(c_, "GET %b", key.data(), key.size());
    order_.push_back(slot);
  }
  void send_put(const std::string& key, const std::string& value, uint32_t slot) override {
    redisAppendCommand(c_, "SET %b %b", key.data(), key.size(), value.data(), value.size());
    order_.push_back(slot);
  }
  uint32_t receive() override {
    void* r = nullptr;
    if (redisGetReply(c_, &r) != REDIS_OK) throw std::runtime_error(std::string("redis: ") + c_->errstr);
    auto* reply = static_cast<redisReply*>(r);
    const int type = reply->type;
    const std::string error = type == REDIS_REPLY_ERROR ? std::string(reply->str, reply->len) : "";
    freeReplyObject(reply);
    if (type == REDIS_REPLY_ERROR) throw std::runtime_error("redis: " + error);
    if (type == REDIS_REPLY_NIL) ++misses;
    const uint32_t slot = order_.front();  // replies come in order
    order_.pop_front();
    return slot;
  }

 private:
  redisContext* c_ = nullptr;
  std::deque<uint32_t> order_;
};

// ---- memcached, through libmemcached (one call at a time) -------------------

class Memcached final : public Connection {
 public:
  explicit Memcached(const Target& t) : address_(t.address) {
    const auto [host, port] = split_address(t.address);
    m_ = memcached_create(nullptr);
    memcached_behavior_set(m_, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1);
    memcached_server_add(m_, host.c_str(), static_cast<in_port_t>(port));
    const memcached_return_t rc = memcached_version(m_);
    if (rc != MEMCACHED_SUCCESS) {
      const std::string why = memcached_strerror(m_, rc);
      memcached_free(m_);
      throw std::runtime_error("cannot reach memcached at " + address_ + ": " + why);
    }
  }
  ~Memcached() override { memcached_free(m_); }

  void send_get(const std::string& key, uint32_t slot) override { pending_ = {slot, key, "", false}; }
  void send_put(const std::string& key, const std::string& value, uint32_t slot) override {
    pending_ = {slot, key, value, true};
  }
  uint32_t receive() override {
    memcached_return_t rc;
    if (pending_.put) {
      rc = memcached_set(m_, pending_.key.data(), pending_.key.size(), pending_.value.data(),
                         pending_.value.size(), 0, 0);
    } else {
      size_t length = 0;
      uint32_t flags = 0;
      char* value = memcached_get(m_, pending_.key.data(), pending_.key.size(), &length, &flags, &rc);
      free(value);
      if (rc == MEMCACHED_NOTFOUND) {
        ++misses;
        rc = MEMCACHED_SUCCESS;
      }
    }
    if (rc != MEMCACHED_SUCCESS) {
      throw std::runtime_error("memcached: " + std::string(memcached_strerror(m_, rc)));
    }
    return pending_.slot;
  }

 private:
  std::string address_;
  memcached_st* m_ = nullptr;
  Pending pending_;
};

}  // namespace

Target parse_target(const std::string& url) {
  const size_t sep = url.find("://");
  if (sep == std::string::npos) {
    throw std::invalid_argument("target '" + url + "' is not SCHEME://HOST:PORT");
  }
  const std::string scheme = url.substr(0, sep);
  Target t;
  t.address = url.substr(sep + 3);
  if (scheme == "cairn") {
    t.kind = Target::Kind::kCairn;
  } else if (scheme == "cairn-stream") {
    t.kind = Target::Kind::kCairnStream;
  } else if (scheme == "redis") {
    t.kind = Target::Kind::kRedis;
  } else if (scheme == "memcached") {
    t.kind = Target::Kind::kMemcached;
  } else {
    throw std::invalid_argument("unknown target scheme '" + scheme +
                                "' (cairn, cairn-stream, redis or memcached)");
  }
  split_address(t.address);  // validates
  return t;
}

const char* kind_name(Target::Kind kind) {
  switch (kind) {
    case Target::Kind::kCairn: return "cairn (gRPC unary)";
    case Target::Kind::kCairnStream: return "cairn (gRPC Stream)";
    case Target::Kind::kRedis: return "redis-server";
    case Target::Kind::kMemcached: return "memcached";
    case Target::Kind::kConfig: return "cairn (a config's client stack)";
  }
  return "?";
}

std::unique_ptr<Connection> connect(const Target& target, int depth,
                                    std::atomic<uint64_t>* clock) {
  try {
    switch (target.kind) {
      case Target::Kind::kCairn: {
        GrpcOptions o;
        o.targets = {target.address};
        o.store = target.store;
        o.retries = 0;
        if (const char* token = std::getenv("CAIRN_TOKEN"); token != nullptr) o.token = token;
        return std::make_unique<CairnUnary>(std::make_unique<GrpcStore>(o), depth, clock);
      }
      case Target::Kind::kConfig:
        // Each thread its own stack: its own connections, as elsewhere.
        return std::make_unique<CairnUnary>(Config::load(target.address).open(target.store),
                                            depth, clock);
      case Target::Kind::kCairnStream: return std::make_unique<CairnStream>(target, clock);
      case Target::Kind::kRedis: return std::make_unique<Redis>(target);
      case Target::Kind::kMemcached:
        if (depth != 1) throw std::invalid_argument("memcached targets take --depth 1 only");
        return std::make_unique<Memcached>(target);
    }
  } catch (const Error& e) {
    throw std::runtime_error(std::string(to_string(e.code())) + ": " + e.what());
  }
  throw std::invalid_argument("unknown target");
}

}  // namespace cairn::bench
