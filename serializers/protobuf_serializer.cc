// The `protobuf` serializer of config files, for tools and untyped access:
// values stay wire-encoded bytes (std::string), and their text form is the
// message's JSON mapping, found through the message's descriptor — compiled
// into the program, or read from a descriptor set file.

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/json_util.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

#include "cairn/errors.h"
#include "cairn/protobuf.h"
#include "cairn/registry.h"
#include "catalogue/builtin.h"

namespace cairn {

namespace {

namespace pb = google::protobuf;

class DynamicProtobufSerializer final : public Serializer<std::string> {
 public:
  DynamicProtobufSerializer(std::unique_ptr<pb::DescriptorPool> pool,
                            const pb::Descriptor* descriptor)
      : pool_(std::move(pool)), descriptor_(descriptor), prototype_(factory_.GetPrototype(descriptor)) {}

  const std::string& message_name() const { return descriptor_->full_name(); }
  std::string describe() const override { return "protobuf " + descriptor_->full_name(); }

  void write(const std::string& value, std::string* out) const override {
    check(value, [](const std::string& what) { return InvalidArgument(what); });
    *out = value;
  }
  std::string read(std::string_view bytes) const override {
    check(bytes, [](const std::string& what) { return Corruption(what); });
    return std::string(bytes);
  }
  std::string parse_text(std::string_view text) const override {
    std::unique_ptr<pb::Message> m(prototype_->New());
    const auto status = pb::util::JsonStringToMessage(pb::StringPiece(text.data(), text.size()), m.get());
    if (!status.ok()) throw InvalidArgument(describe() + ": " + status.ToString());
    if (!m->IsInitialized()) {
      throw InvalidArgument(describe() + ": required fields missing: " + m->InitializationErrorString());
    }
    // Deterministic, as ProtobufSerializer: equal messages, equal bytes.
    std::string out;
    {
      pb::io::StringOutputStream stream(&out);
      pb::io::CodedOutputStream coded(&stream);
      coded.SetSerializationDeterministic(true);
      m->SerializePartialToCodedStream(&coded);
    }
    return out;
  }
  std::string format_text(std::string_view bytes) const override {
    std::unique_ptr<pb::Message> m(prototype_->New());
    if (!m->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      throw Corruption(describe() + ": malformed message");
    }
    std::string json;
    pb::util::MessageToJsonString(*m, &json);
    return json;
  }

 private:
  // Bytes are a value of this store only if they parse as the message.
  template <typename MakeError>
  void check(std::string_view bytes, MakeError make) const {
    std::unique_ptr<pb::Message> m(prototype_->New());
    if (!m->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      throw make(describe() + ": not a valid message");
    }
  }

  std::unique_ptr<pb::DescriptorPool> pool_;  // null for compiled-in types
  const pb::Descriptor* descriptor_;
  mutable pb::DynamicMessageFactory factory_;
  const pb::Message* prototype_;
};

}  // namespace

namespace internal {

std::string configured_protobuf_message(const AnySerializer& s) {
  const auto* d = dynamic_cast<const DynamicProtobufSerializer*>(&s);
  return d == nullptr ? std::string() : d->message_name();
}

}  // namespace internal

std::shared_ptr<const AnySerializer> make_protobuf_serializer(const Params& p) {
  const std::string message = p.get_string("message");
  const std::string descriptors = p.get_string("descriptors", "");
  if (descriptors.empty()) {
    const pb::Descriptor* d = pb::DescriptorPool::generated_pool()->FindMessageTypeByName(message);
    if (d == nullptr) {
      p.fail("message", "protobuf message '" + message +
                            "' is not compiled into this program; give `descriptors: FILE` "
                            "(protoc --include_imports --descriptor_set_out=FILE)");
    }
    return std::make_shared<DynamicProtobufSerializer>(nullptr, d);
  }
  std::ifstream in(descriptors, std::ios::binary);
  pb::FileDescriptorSet set;
  if (!in || !set.ParseFromIstream(&in)) {
    p.fail("descriptors", "cannot read a FileDescriptorSet from '" + descriptors + "'");
  }
  auto pool = std::make_unique<pb::DescriptorPool>();
  for (const pb::FileDescriptorProto& file : set.file()) {
    if (pool->BuildFile(file) == nullptr) {
      p.fail("descriptors", "'" + descriptors + "': cannot load " + file.name() +
                                " (built with --include_imports?)");
    }
  }
  const pb::Descriptor* d = pool->FindMessageTypeByName(message);
  if (d == nullptr) p.fail("message", "no message '" + message + "' in " + descriptors);
  return std::make_shared<DynamicProtobufSerializer>(std::move(pool), d);
}

}  // namespace cairn
