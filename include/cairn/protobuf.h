// Protobuf values: a store whose values (or keys) are a protobuf message
// type. The bytes are the message's standard wire encoding, so a client in
// any language with the .proto reads them. Text form (for the tools): the
// message's JSON mapping.
//
//   #include "cairn/protobuf.h"
//   auto users = cairn::open_client<std::string, my::User>("cairn.yaml", "users");
//
// with, in the config, `value: {type: protobuf, message: my.User}`. Include
// this header before cairn/client.h wherever a client of a message type is
// opened (cairn/client.h refuses to compile such a client otherwise).
// Thread-safe.

#ifndef CAIRN_PROTOBUF_H_
#define CAIRN_PROTOBUF_H_

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>

#include <concepts>
#include <memory>
#include <string>
#include <type_traits>

#include "cairn/errors.h"
#include "cairn/export.h"
#include "cairn/serializer.h"

CAIRN_API_BEGIN
namespace cairn {

template <typename M>
concept ProtobufMessage = std::derived_from<M, google::protobuf::Message>;

template <ProtobufMessage M>
class ProtobufSerializer final : public Serializer<M> {
 public:
  std::string describe() const override {
    return "protobuf " + M::descriptor()->full_name();
  }
  // Deterministic serialization (map entries sorted): equal messages make
  // equal bytes, which keys depend on.
  void write(const M& value, std::string* out) const override {
    out->clear();
    if (!value.IsInitialized()) {
      throw InvalidArgument("protobuf " + M::descriptor()->full_name() +
                            ": required fields missing: " + value.InitializationErrorString());
    }
    google::protobuf::io::StringOutputStream stream(out);
    {
      google::protobuf::io::CodedOutputStream coded(&stream);  // flushes on destruction
      coded.SetSerializationDeterministic(true);
      value.SerializePartialToCodedStream(&coded);
    }
  }
  M read(std::string_view bytes) const override {
    M m;
    if (!m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      throw Corruption("protobuf " + M::descriptor()->full_name() + ": malformed message");
    }
    return m;
  }
  std::string parse_text(std::string_view text) const override {
    M m;
    const auto status = google::protobuf::util::JsonStringToMessage(
        google::protobuf::StringPiece(text.data(), text.size()), &m);
    if (!status.ok()) {
      throw InvalidArgument("protobuf " + M::descriptor()->full_name() + ": " + status.ToString());
    }
    return this->to_bytes(m);
  }
  std::string format_text(std::string_view bytes) const override {
    std::string json;
    google::protobuf::util::MessageToJsonString(read(bytes), &json);
    return json;
  }
};

template <ProtobufMessage M>
std::shared_ptr<const Serializer<M>> protobuf_serializer() {
  static const auto s = std::make_shared<ProtobufSerializer<M>>();
  return s;
}

namespace internal {

// The protobuf type a config names, for checking it against a Client's
// message type. Empty if `s` is not a configured protobuf serializer.
std::string configured_protobuf_message(const AnySerializer& s);

// Found by open_client (argument-dependent lookup on SerializerTag): a
// config naming message type M gives a Client<..., M> its typed serializer.
template <ProtobufMessage M>
std::shared_ptr<const Serializer<M>> adapt_serializer(SerializerTag, std::type_identity<M>,
                                                      const AnySerializer& configured) {
  const std::string name = configured_protobuf_message(configured);
  if (name.empty()) return nullptr;
  if (name != M::descriptor()->full_name()) {
    throw InvalidArgument("the store holds protobuf " + name + ", not " +
                          M::descriptor()->full_name());
  }
  return protobuf_serializer<M>();
}

}  // namespace internal

}  // namespace cairn
CAIRN_API_END

#endif  // CAIRN_PROTOBUF_H_
