#include "server/listen_address.h"

#include <stdexcept>

#include "cairn/errors.h"

namespace cairn::internal {

boost::asio::ip::tcp::endpoint parse_listen_address(const std::string& listen,
                                                    std::string_view front) {
  const std::string what = std::string(front) + " listen address '" + listen + "'";
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon + 1 == listen.size()) {
    throw InvalidArgument(what + " is not HOST:PORT");
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  unsigned long port = 0;
  try {
    size_t used = 0;
    port = std::stoul(listen.substr(colon + 1), &used);
    if (used != listen.size() - colon - 1 || port > 65535) throw std::out_of_range("port");
  } catch (const std::exception&) {
    throw InvalidArgument(what + ": the port is not 0..65535");
  }
  if (host == "localhost") host = "127.0.0.1";
  boost::system::error_code ec;
  const boost::asio::ip::address address = boost::asio::ip::make_address(host, ec);
  if (ec) throw InvalidArgument(what + ": '" + host + "' is not an IP address");
  return {address, static_cast<unsigned short>(port)};
}

}  // namespace cairn::internal
