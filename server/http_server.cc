#include "server/http_server.h"

// With -fsanitize=address, GCC 12 reports a boost::optional inside Beast's
// parser as maybe-uninitialized (a known false positive of the middle end,
// which ignores that the header is a system header).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <array>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "cairn/errors.h"
#include "cairn/log.h"
#include "server/http_handler.h"
#include "server/listen_address.h"
#include "server/tls_context.h"

namespace cairn {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using internal::HttpHandler;
using internal::HttpRequest;
using internal::HttpResponse;

class Session;

}  // namespace

struct HttpServer::Impl {
  Impl(HttpOptions o, const ServedStores& stores)
      : options(std::move(o)),
        handler(stores, options.node_id, options.extra_metrics, options.cluster_json, options.access),
        acceptor(asio::make_strand(io)),
        retry(acceptor.get_executor()) {
    if (!options.tls_cert.empty()) {
      tls.emplace(internal::server_tls_context("HTTP", options.tls_cert, options.tls_key,
                                               options.tls_ca));
    }
  }

  void accept();

  // Declared before io: handlers still queued when io is destroyed hold
  // sessions, whose destructors use these.
  HttpOptions options;
  HttpHandler handler;
  std::optional<asio::ssl::context> tls;  // set: connections speak TLS (HTTPS)
  std::mutex mu;
  std::condition_variable cv;
  // Live connections, so shutdown can close the idle ones.
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;  // guarded by mu
  bool draining = false;                                          // guarded by mu

  asio::io_context io;
  tcp::acceptor acceptor;
  asio::steady_timer retry;  // re-arms accept after a failure
  std::vector<std::thread> threads;
  int port = 0;
};

namespace {

// What the server keeps of a connection: enough to drain it on shutdown.
class Session {
 public:
  explicit Session(HttpServer::Impl* server) : server_(server) {}
  virtual ~Session() {
    std::lock_guard lock(server_->mu);
    server_->sessions.erase(this);
    if (server_->sessions.empty()) server_->cv.notify_all();
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  virtual void start() = 0;
  // On shutdown: a connection waiting for its next request is closed now;
  // one in the middle of a request finishes it, then closes.
  virtual void drain() = 0;

 protected:
  HttpServer::Impl* server_;
};

// One connection over `Stream` (a TCP stream, or TLS over one): reads a
// request, answers it, and repeats while the client keeps the connection
// alive. Its handlers run on its strand, one at a time.
template <class Stream>
class Connection final : public Session, public std::enable_shared_from_this<Connection<Stream>> {
 public:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

  Connection(tcp::socket socket, HttpServer::Impl* server)
    requires(!kTls)
      : Session(server), stream_(std::move(socket)) {}
  Connection(tcp::socket socket, HttpServer::Impl* server)
    requires(kTls)
      : Session(server), stream_(std::move(socket), *server->tls) {}

  void start() override {
    asio::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (kTls) {
        // A client that never finishes its handshake is closed when the
        // idle timeout passes, like one that never sends its request.
        self->lowest().expires_after(self->server_->options.idle_timeout);
        self->stream_.async_handshake(asio::ssl::stream_base::server,
                                      [self](beast::error_code ec) {
                                        if (ec) return self->close();
                                        // A client certificate the CA
                                        // signed names the caller, with
                                        // or without a token.
                                        self->cert_names_ =
                                            internal::verified_peer_names(self->stream_.native_handle());
                                        self->read_header();
                                      });
      } else {
        self->read_header();
      }
    });
  }

  void drain() override {
    asio::post(stream_.get_executor(), [self = this->shared_from_this()] {
      beast::error_code ignored;
      if (!self->busy_) self->lowest().socket().close(ignored);
    });
  }

 private:
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  bool draining() {
    std::lock_guard lock(server_->mu);
    return server_->draining;
  }

  void read_header() {
    if (draining()) return close();
    busy_ = false;
    parser_.emplace();
    parser_->body_limit(server_->options.max_body);
    lowest().expires_after(server_->options.idle_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = this->shared_from_this()](beast::error_code ec, size_t) {
                              self->on_header(ec);
                            });
  }

  void on_header(beast::error_code ec) {
    if (ec) return on_error(ec);
    busy_ = true;
    // curl and others wait for "100 Continue" before sending a large body.
    const auto expect = parser_->get()[http::field::expect];
    if (parser_->get().version() >= 11 && beast::iequals(expect, "100-continue")) {
      auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_,
                                                                      parser_->get().version());
      http::async_write(stream_, *cont,
                        [self = this->shared_from_this(), cont](beast::error_code e, size_t) {
                          if (e) return self->close();
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  void read_body() {
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code ec, size_t) {
                       if (ec) return self->on_error(ec);
                       self->respond();
                     });
  }

  void on_error(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == asio::error::operation_aborted ||
        ec == beast::error::timeout || ec.category() != http::make_error_code(http::error::bad_target).category()) {
      return close();  // the client left, went quiet, or we are shutting down
    }
    // The request itself is wrong: say so, then close (the rest of the
    // stream cannot be trusted).
    HttpResponse r;
    r.content_type = "text/plain; charset=utf-8";
    if (ec == http::error::body_limit) {
      r.status = 413;
      r.body = "the request body is larger than the server's limit of " +
               std::to_string(server_->options.max_body) + " bytes\n";
    } else if (ec == http::error::header_limit) {
      r.status = 431;
      r.body = "the request header is too large\n";
    } else {
      r.status = 400;
      r.body = "malformed HTTP request: " + ec.message() + "\n";
    }
    server_->handler.count(r.status);
    send(r, 11, /*keep_alive=*/false, /*linger=*/true);
  }

  void respond() {
    auto& req = parser_->get();
    HttpRequest request;
    // HEAD is a GET whose body is not sent.
    const bool head = req.method() == http::verb::head;
    request.method = head ? "GET" : std::string(req.method_string());
    request.target = std::string(req.target());
    request.clock = std::string(req[internal::kClockHeader]);
    request.authorization = std::string(req[http::field::authorization]);
    request.cert_names = &cert_names_;
    request.body = std::move(req.body());
    HttpResponse r = server_->handler.handle(request);
    if (head) {
      head_length_ = r.body.size();
      r.body.clear();
    }
    send(r, req.version(), req.keep_alive() && !draining(), /*linger=*/false, head);
  }

  // `linger`: after an error response to a request whose body may still be
  // arriving, read and drop what comes for a moment before closing, so the
  // client gets the response instead of a reset.
  void send(const HttpResponse& r, unsigned version, bool keep_alive, bool linger,
            bool head = false) {
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(r.status), version);
    res->set(http::field::server, "cairn");
    if (!r.content_type.empty()) res->set(http::field::content_type, r.content_type);
    for (const auto& [name, value] : r.headers) res->set(name, value);
    res->body() = r.body;
    res->keep_alive(keep_alive);
    res->prepare_payload();
    if (head) res->content_length(head_length_);
    lowest().expires_after(server_->options.idle_timeout);
    http::async_write(stream_, *res,
                      [self = this->shared_from_this(), res, linger](beast::error_code ec, size_t) {
                        if (!ec && linger) return self->linger();
                        if (ec || !res->keep_alive()) return self->close();
                        self->read_header();
                      });
  }

  void linger() {
    beast::error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    lowest().expires_after(std::chrono::seconds(1));
    discard();
  }

  void discard() {
    stream_.async_read_some(asio::buffer(scratch_),
                            [self = this->shared_from_this()](beast::error_code ec, size_t) {
                              if (ec) return self->close();
                              self->discard();
                            });
  }

  void close() {
    busy_ = false;
    beast::error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    lowest().socket().close(ignored);
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::vector<std::string> cert_names_;  // of a verified client certificate (TLS)
  bool busy_ = false;  // on the strand: a request is being read or answered
  size_t head_length_ = 0;
  std::array<char, 16384> scratch_;  // what linger() drops
};

}  // namespace

void HttpServer::Impl::accept() {
  acceptor.async_accept(
      asio::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
        if (ec) {
          // Out of file descriptors, most likely: wait a little instead of
          // spinning on an accept that fails at once.
          log(LogLevel::kWarn, "HTTP accept: " + ec.message() + "; retrying in 100 ms");
          retry.expires_after(std::chrono::milliseconds(100));
          retry.async_wait([this](beast::error_code e) {
            if (!e) accept();
          });
          return;
        }
        // Made outside the lock: a session that fails to be made (or is
        // refused at the limit) takes the lock in its destructor.
        std::shared_ptr<Session> session;
        try {
          if (tls) {
            session = std::make_shared<Connection<beast::ssl_stream<beast::tcp_stream>>>(
                std::move(socket), this);
          } else {
            session = std::make_shared<Connection<beast::tcp_stream>>(std::move(socket), this);
          }
        } catch (const std::exception& e) {
          log(LogLevel::kWarn, std::string("HTTP: a connection could not be set up: ") + e.what());
        }
        bool admitted = false;
        if (session) {
          std::lock_guard lock(mu);
          admitted = sessions.size() < options.max_connections;
          if (admitted) sessions.emplace(session.get(), session);
        }
        if (admitted) session->start();  // else closed as `session` goes
        accept();
      });
}

HttpServer::HttpServer(HttpOptions options, ServedStores stores)
    : impl_(std::make_unique<Impl>(std::move(options), stores)) {
  const tcp::endpoint endpoint = internal::parse_listen_address(impl_->options.listen, "HTTP");
  beast::error_code ec;
  impl_->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl_->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl_->acceptor.bind(endpoint, ec);
  if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw Unavailable("HTTP: cannot listen on " + impl_->options.listen + ": " + ec.message());
  }
  impl_->port = impl_->acceptor.local_endpoint().port();
  impl_->accept();
  const int n = std::max(1, impl_->options.threads);
  for (int i = 0; i < n; ++i) impl_->threads.emplace_back([io = &impl_->io] { io->run(); });
}

HttpServer::~HttpServer() { shutdown(std::chrono::seconds(1)); }

int HttpServer::port() const { return impl_->port; }

void HttpServer::shutdown(std::chrono::milliseconds grace) {
  std::vector<std::shared_ptr<Session>> live;
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->draining) return;
    impl_->draining = true;
    for (auto& [ptr, weak] : impl_->sessions) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
  }
  impl_->handler.set_draining();
  asio::post(impl_->acceptor.get_executor(), [impl = impl_.get()] {
    beast::error_code ignored;
    impl->acceptor.close(ignored);
    impl->retry.cancel();
  });
  for (auto& s : live) s->drain();
  live.clear();
  {
    std::unique_lock lock(impl_->mu);
    impl_->cv.wait_for(lock, grace, [this] { return impl_->sessions.empty(); });
  }
  // What is left did not finish within the grace: cut it off.
  impl_->io.stop();
  for (std::thread& t : impl_->threads) t.join();
  impl_->threads.clear();
}

}  // namespace cairn
