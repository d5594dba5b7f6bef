#include "server/resp_server.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "cairn/errors.h"
#include "cairn/log.h"
#include "core/executor.h"
#include "server/listen_address.h"
#include "server/metrics_text.h"
#include "server/resp_commands.h"
#include "server/resp_protocol.h"
#include "server/tls_context.h"

namespace cairn {

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using internal::RespCommands;
using internal::RespParser;

class Connection;

}  // namespace

struct RespServer::Impl {
  Impl(RespServerOptions o, const ServedStores& stores)
      : options(std::move(o)),
        executor(std::make_unique<internal::Executor>(std::max(1, options.workers))),
        commands(stores, internal::RespOptions{.node_id = options.node_id, .access = options.access},
                 executor.get()) {
    const int n = std::max(1, options.threads);
    for (int i = 0; i < n; ++i) ios.push_back(std::make_unique<asio::io_context>(1));
    acceptor.emplace(*ios[0]);
    retry.emplace(*ios[0]);
    if (!options.tls_cert.empty()) {
      tls.emplace(internal::server_tls_context("RESP", options.tls_cert, options.tls_key,
                                               options.tls_ca));
    }
  }

  void accept();

  RespServerOptions options;
  std::optional<asio::ssl::context> tls;  // set: connections speak TLS
  // Runs the writes that may block; before `commands`, which borrows it.
  // Reset in shutdown(), once no connection is left.
  std::unique_ptr<internal::Executor> executor;
  RespCommands commands;
  std::mutex mu;
  std::condition_variable cv;
  // Live connections, so shutdown can close them. A connection lives on
  // while a deferred command holds it (RespSession::keep), so once this is
  // empty no command is left running on a store.
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections;  // guarded by mu
  bool draining = false;                                                   // guarded by mu
  // The I/O threads have stopped: replies are no longer posted to them.
  bool io_stopped = false;  // guarded by mu

  // Declared after what queued handlers' connections use in their
  // destructors (mu, connections).
  std::vector<std::unique_ptr<asio::io_context>> ios;
  std::optional<tcp::acceptor> acceptor;
  std::optional<asio::steady_timer> retry;  // re-arms accept after a failure
  size_t next_io = 0;                       // on ios[0]: where the next connection lives
  std::vector<std::thread> threads;
  int port = 0;
  bool stopped = false;  // guarded by mu
};

namespace {

// What a command may take: --max-message-size, for a value and in all.
internal::RespLimits limits(const RespServerOptions& o) {
  return internal::RespLimits{.max_bulk = o.max_command, .max_command = o.max_command};
}

// One client. Everything but deliver() runs on its io_context's one thread.
class Connection final : public internal::RespSession,
                         public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, RespServer::Impl* server)
      : socket_(server->tls ? tcp::socket(socket.get_executor()) : std::move(socket)),
        server_(server),
        parser_(limits(server->options)) {
    server_->commands.open(*this);
    in_.resize(16 << 10);
    if (server->tls) {
      tls_ = std::make_unique<asio::ssl::stream<tcp::socket>>(std::move(socket), *server->tls);
    }
  }

  ~Connection() override {
    server_->commands.stats().connected.fetch_sub(1, std::memory_order_relaxed);
    std::lock_guard lock(server_->mu);
    server_->connections.erase(this);
    if (server_->connections.empty()) server_->cv.notify_all();
  }

  void start() {
    asio::post(lowest().get_executor(), [self = shared_from_this()] {
      if (!self->tls_) return self->read();
      // A client that never finishes its handshake holds a connection
      // slot, like an idle one; nothing else.
      self->tls_->async_handshake(asio::ssl::stream_base::server,
                                  [self](const boost::system::error_code& ec) {
                                    if (ec) return self->close();
                                    // A client certificate the CA signed
                                    // (the handshake checked it) names
                                    // the connection's caller.
                                    self->cert_names =
                                        internal::verified_peer_names(self->tls_->native_handle());
                                    self->read();
                                  });
    });
  }

  // On shutdown: no more commands are read; the connection closes once
  // the replies of those it has are sent.
  void drain() {
    asio::post(lowest().get_executor(), [self = shared_from_this()] {
      self->draining_ = true;
      self->maybe_close();
    });
  }

  // Closes the socket now, whatever is in progress.
  void cut() {
    asio::post(lowest().get_executor(), [self = shared_from_this()] { self->close(); });
  }

  void deliver(uint64_t ticket, std::string reply) override {
    // Under the lock: shutdown stops the I/O threads under it too, and a
    // reply that comes after has no one to go to.
    std::lock_guard lock(server_->mu);
    if (server_->io_stopped) return;
    asio::post(lowest().get_executor(),
               [self = shared_from_this(), ticket, reply = std::move(reply)]() mutable {
                 self->on_reply(ticket, std::move(reply));
               });
  }

  std::shared_ptr<internal::RespSession> keep() override { return shared_from_this(); }

 private:
  // A command whose reply is not yet sent because it, or one before it,
  // was deferred.
  struct Slot {
    uint64_t ticket = 0;
    bool ready = false;
    std::string reply;
    std::vector<std::string> keys;  // what it holds in busy_, while not ready
    bool write = false;
  };
  struct KeyUse {
    int reads = 0;
    int writes = 0;
  };

  void read() {
    if (reading_ || closed_ || stopped_reading_) return;
    if (end_ == in_.size()) {
      // Make room: move the unread part to the front, or grow (a command
      // is at most max_command bytes, which bounds the buffer).
      if (start_ > 0) {
        std::memmove(in_.data(), in_.data() + start_, end_ - start_);
        end_ -= start_;
        start_ = 0;
      } else {
        // Doubling as bytes arrive, not to the size a header claims: a
        // client that only announces a large value costs nothing.
        in_.resize(in_.size() * 2);
      }
    }
    reading_ = true;
    auto done = [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
      self->reading_ = false;
      if (ec) {
        // The client closed (or half-closed) its side: answer what it
        // sent, then close. (TLS: a close without close_notify is a
        // stream_truncated error; the client left all the same.)
        self->stopped_reading_ = true;
        if (ec != asio::error::eof && ec != asio::ssl::error::stream_truncated) return self->close();
      }
      self->end_ += n;
      self->pump();
    };
    const auto buffer = asio::buffer(in_.data() + end_, in_.size() - end_);
    if (tls_) {
      tls_->async_read_some(buffer, std::move(done));
    } else {
      socket_.async_read_some(buffer, std::move(done));
    }
  }

  // Runs the commands read so far, as far as ordering and the limits let,
  // sends their replies, and reads on.
  void pump() {
    blocked_ = false;
    while (!closed_ && !quitting_ && !draining_) {
      if (held_back()) break;  // resumed when replies drain
      const std::string_view data(in_.data() + start_, end_ - start_);
      const RespParser::Status status = parser_.parse(data);
      if (status == RespParser::Status::kIncomplete) {
        start_ += parser_.consumed();  // empty lines and "*0" skipped
        break;
      }
      if (status == RespParser::Status::kError) {
        server_->commands.stats().protocol_errors.fetch_add(1, std::memory_order_relaxed);
        std::string reply;
        internal::resp::error(&reply, "ERR " + parser_.error());
        add_reply(std::move(reply));
        quitting_ = true;  // the rest of the stream cannot be trusted
        break;
      }
      const auto& args = parser_.args();
      RespCommands::Access access;
      if (!slots_.empty()) {
        access = server_->commands.access(args);
        if (conflicts(access)) {
          // Parsed again once what it waits for answers; nothing more is
          // read meanwhile.
          blocked_ = true;
          break;
        }
      }
      const size_t used = parser_.consumed();
      const uint64_t ticket = next_ticket_++;
      bool answered = false;
      if (slots_.empty()) {
        answered = server_->commands.run(*this, args, ticket, &out_);
        if (!answered) access = server_->commands.access(args);
      } else {
        std::string reply;
        answered = server_->commands.run(*this, args, ticket, &reply);
        if (answered) add_reply(std::move(reply));
      }
      if (!answered) {
        Slot slot;
        slot.ticket = ticket;
        slot.write = access.write;
        for (std::string_view k : access.keys) {
          slot.keys.emplace_back(k);
          KeyUse& use = busy_[slot.keys.back()];
          ++(access.write ? use.writes : use.reads);
        }
        slots_.push_back(std::move(slot));
      }
      start_ += used;
      if (quit) quitting_ = true;
    }
    // A read in progress writes at end_: the buffer moves only between
    // reads.
    if (start_ == end_ && !reading_) start_ = end_ = 0;
    flush();
    maybe_close();
    if (!quitting_ && !draining_ && !blocked_ && !held_back()) read();
  }

  // Too many commands await replies, or too many reply bytes wait to be
  // sent (those held in slots behind a deferred one included).
  bool held_back() const {
    return slots_.size() >= server_->options.max_pending ||
           out_.size() + writing_.size() + held_bytes_ >= server_->options.max_output;
  }

  bool conflicts(const RespCommands::Access& access) const {
    for (std::string_view k : access.keys) {
      auto it = busy_.find(std::string(k));
      if (it == busy_.end()) continue;
      if (it->second.writes > 0 || (access.write && it->second.reads > 0)) return true;
    }
    return false;
  }

  // A reply in order: straight out if nothing before it waits.
  void add_reply(std::string reply) {
    if (slots_.empty()) {
      out_ += reply;
      return;
    }
    Slot slot;
    slot.ready = true;
    held_bytes_ += reply.size();
    slot.reply = std::move(reply);
    slots_.push_back(std::move(slot));
  }

  void on_reply(uint64_t ticket, std::string reply) {
    for (Slot& s : slots_) {
      if (s.ticket != ticket || s.ready) continue;
      s.ready = true;
      held_bytes_ += reply.size();
      s.reply = std::move(reply);
      for (const std::string& k : s.keys) {
        auto it = busy_.find(k);
        if (--(s.write ? it->second.writes : it->second.reads) == 0 && it->second.reads == 0 &&
            it->second.writes == 0) {
          busy_.erase(it);
        }
      }
      s.keys.clear();
      break;
    }
    while (!slots_.empty() && slots_.front().ready) {
      held_bytes_ -= slots_.front().reply.size();
      out_ += slots_.front().reply;
      slots_.pop_front();
    }
    if (closed_) return;
    pump();
  }

  void flush() {
    if (writing_in_flight_ || out_.empty() || closed_) return;
    writing_.swap(out_);
    out_.clear();
    writing_in_flight_ = true;
    auto done = [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
      self->writing_in_flight_ = false;
      self->writing_.clear();
      if (ec) return self->close();
      // Room again: read on (pump does), and send what came meanwhile.
      self->pump();
    };
    if (tls_) {
      asio::async_write(*tls_, asio::buffer(writing_), std::move(done));
    } else {
      asio::async_write(socket_, asio::buffer(writing_), std::move(done));
    }
  }

  // Closes once nothing is left to answer or send, if the client quit, the
  // stream broke, the client closed its side, or the server drains.
  void maybe_close() {
    if (closed_ || !(quitting_ || draining_ || stopped_reading_)) return;
    if (stopped_reading_ && !quitting_ && !draining_) {
      // Half-closed: whatever complete commands are left still run.
      const std::string_view data(in_.data() + start_, end_ - start_);
      RespParser probe(limits(server_->options));
      if (!slots_.empty() || probe.parse(data) == RespParser::Status::kCommand) return;
    }
    if (!slots_.empty() || writing_in_flight_ || !out_.empty()) return;
    close();
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ignored;
    lowest().shutdown(tcp::socket::shutdown_both, ignored);
    lowest().close(ignored);
  }

  tcp::socket& lowest() { return tls_ ? tls_->next_layer() : socket_; }

  tcp::socket socket_;  // unused (closed) with TLS
  std::unique_ptr<asio::ssl::stream<tcp::socket>> tls_;
  RespServer::Impl* server_;
  RespParser parser_;
  std::vector<char> in_;
  size_t start_ = 0;  // in_[start_, end_) is read and not yet run
  size_t end_ = 0;
  std::string out_;      // replies to send, in order
  std::string writing_;  // replies being sent
  bool writing_in_flight_ = false;
  bool reading_ = false;
  bool stopped_reading_ = false;  // the client closed its side, or a read failed
  bool quitting_ = false;         // QUIT or a protocol error: close once answered
  bool draining_ = false;         // the server shuts down
  bool closed_ = false;
  bool blocked_ = false;  // the next command waits for a deferred one on its key
  std::deque<Slot> slots_;
  size_t held_bytes_ = 0;  // replies ready in slots_, behind a deferred one
  std::unordered_map<std::string, KeyUse> busy_;  // keys of deferred commands
  uint64_t next_ticket_ = 1;
};

}  // namespace

void RespServer::Impl::accept() {
  asio::io_context& io = *ios[next_io];
  next_io = (next_io + 1) % ios.size();
  acceptor->async_accept(io, [this](const boost::system::error_code& ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor->is_open()) return;
    if (ec) {
      log(LogLevel::kWarn, "RESP accept: " + ec.message() + "; retrying in 100 ms");
      retry->expires_after(std::chrono::milliseconds(100));
      retry->async_wait([this](const boost::system::error_code& e) {
        if (!e) accept();
      });
      return;
    }
    internal::RespStats& stats = commands.stats();
    stats.connections_received.fetch_add(1, std::memory_order_relaxed);
    std::shared_ptr<Connection> connection;
    {
      std::lock_guard lock(mu);
      if (!draining && connections.size() < options.max_connections) {
        boost::system::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        stats.connected.fetch_add(1, std::memory_order_relaxed);
        try {
          connection = std::make_shared<Connection>(std::move(socket), this);
        } catch (const std::exception& e) {
          // (SSL_new out of memory.) Its destructor did not run, nor take
          // the lock held here: undo its count, and let the I/O thread go on.
          stats.connected.fetch_sub(1, std::memory_order_relaxed);
          log(LogLevel::kWarn, std::string("RESP: a connection could not be set up: ") + e.what());
        }
        if (connection) connections.emplace(connection.get(), connection);
      }
    }
    if (connection) {
      connection->start();
    } else {
      stats.rejected.fetch_add(1, std::memory_order_relaxed);
      boost::system::error_code ignored;
      socket.close(ignored);
    }
    accept();
  });
}

RespServer::RespServer(RespServerOptions options, ServedStores stores)
    : impl_(std::make_unique<Impl>(std::move(options), stores)) {
  const tcp::endpoint endpoint = internal::parse_listen_address(impl_->options.listen, "RESP");
  boost::system::error_code ec;
  tcp::acceptor& acceptor = *impl_->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw Unavailable("RESP: cannot listen on " + impl_->options.listen + ": " + ec.message());
  impl_->port = acceptor.local_endpoint().port();
  impl_->commands.set_port(impl_->port);
  impl_->accept();
  for (auto& io : impl_->ios) {
    impl_->threads.emplace_back([io = io.get()] {
      auto work = asio::make_work_guard(*io);
      io->run();
    });
  }
}

RespServer::~RespServer() { shutdown(std::chrono::seconds(1)); }

int RespServer::port() const { return impl_->port; }

void RespServer::shutdown(std::chrono::milliseconds grace) {
  auto live = [this] {
    std::vector<std::shared_ptr<Connection>> out;
    for (auto& [ptr, weak] : impl_->connections) {
      if (auto c = weak.lock()) out.push_back(std::move(c));
    }
    return out;
  };
  std::vector<std::shared_ptr<Connection>> open;
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopped) return;
    impl_->stopped = true;
    impl_->draining = true;
    open = live();
  }
  asio::post(*impl_->ios[0], [impl = impl_.get()] {
    boost::system::error_code ignored;
    impl->acceptor->close(ignored);
    impl->retry->cancel();
  });
  for (auto& c : open) c->drain();
  open.clear();  // a connection goes once it has closed
  {
    std::unique_lock lock(impl_->mu);
    impl_->cv.wait_for(lock, grace, [this] { return impl_->connections.empty(); });
    open = live();
  }
  // What is left did not finish within the grace: cut it off. Then stop
  // the I/O threads, so that no command starts any more; run what they
  // left queued (it finds its connection closed and lets it go); and wait
  // for the commands still running on stores (their calls have deadlines)
  // to release their connections, so that none outlives this call.
  for (auto& c : open) c->cut();
  open.clear();
  for (auto& io : impl_->ios) io->stop();
  for (std::thread& t : impl_->threads) t.join();
  impl_->threads.clear();
  {
    std::lock_guard lock(impl_->mu);
    impl_->io_stopped = true;
  }
  for (auto& io : impl_->ios) {
    io->restart();
    io->poll();
  }
  {
    std::unique_lock lock(impl_->mu);
    impl_->cv.wait(lock, [this] { return impl_->connections.empty(); });
  }
  impl_->executor.reset();
}

std::string RespServer::metrics() const {
  const internal::RespStats& s = impl_->commands.stats();
  auto line = internal::metric;
  return line("cairn_resp_connections", "gauge", "Redis-protocol connections open.",
              s.connected.load()) +
         line("cairn_resp_connections_total", "counter", "Redis-protocol connections accepted.",
              s.connections_received.load()) +
         line("cairn_resp_rejected_connections_total", "counter",
              "Redis-protocol connections refused at the limit.", s.rejected.load()) +
         line("cairn_resp_commands_total", "counter", "Redis-protocol commands run.",
              s.commands.load()) +
         line("cairn_resp_error_replies_total", "counter", "Redis-protocol error replies.",
              s.errors.load()) +
         line("cairn_resp_protocol_errors_total", "counter",
              "Redis-protocol connections closed for malformed input.", s.protocol_errors.load());
}

}  // namespace cairn
