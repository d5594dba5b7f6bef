// The address a front listens on, from its flag: "host:port" or
// "[v6]:port", where host is an IP address or "localhost".

#ifndef CAIRN_SERVER_LISTEN_ADDRESS_H_
#define CAIRN_SERVER_LISTEN_ADDRESS_H_

#include <boost/asio/ip/tcp.hpp>
#include <string>
#include <string_view>

namespace cairn::internal {

// Throws InvalidArgument naming `front` ("HTTP", "RESP") if `listen` is not
// HOST:PORT with a port in 0..65535 and an IP address for a host.
boost::asio::ip::tcp::endpoint parse_listen_address(const std::string& listen,
                                                    std::string_view front);

}  // namespace cairn::internal

#endif  // CAIRN_SERVER_LISTEN_ADDRESS_H_
