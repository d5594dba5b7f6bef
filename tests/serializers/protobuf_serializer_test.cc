#include "cairn/protobuf.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "cairn/client.h"
#include "tests/serializers/user.pb.h"
#include "tests/testing/test_util.h"

namespace cairn::testing {
namespace {

test::User ada() {
  test::User u;
  u.set_name("Ada");
  u.set_id(7);
  u.add_emails("ada@example.org");
  return u;
}

TEST(ProtobufSerializerTest, BytesAreTheStandardWireEncoding) {
  auto s = protobuf_serializer<test::User>();
  const std::string bytes = s->to_bytes(ada());
  test::User back;
  ASSERT_TRUE(back.ParseFromString(bytes)) << "any protobuf reader can parse it";
  EXPECT_EQ(back.name(), "Ada");
  EXPECT_EQ(bytes, ada().SerializeAsString());
  EXPECT_EQ(s->read(bytes).id(), 7);
  EXPECT_EQ(s->describe(), "protobuf cairn.test.User");
}

TEST(ProtobufSerializerTest, MalformedBytesAreCorruption) {
  auto s = protobuf_serializer<test::User>();
  const std::string bytes = s->to_bytes(ada());
  EXPECT_THROW(s->read(bytes.substr(0, bytes.size() - 3)), Corruption);
  EXPECT_THROW(s->read(std::string("\xff\xff\xff\xff\xff", 5)), Corruption);
}

TEST(ProtobufSerializerTest, TextFormIsTheJsonMapping) {
  auto s = protobuf_serializer<test::User>();
  const std::string bytes = s->parse_text(R"({"name":"Bo","id":3,"emails":["b@x"]})");
  EXPECT_EQ(s->read(bytes).name(), "Bo");
  EXPECT_EQ(s->format_text(bytes), R"({"name":"Bo","id":3,"emails":["b@x"]})");
  EXPECT_THROW(s->parse_text(R"({"nmae":"Bo"})"), InvalidArgument);
}

Config protobuf_config(const std::string& value) {
  return Config::parse("stores:\n  users:\n    key: string\n    value: " + value +
                           "\n    stack: [{engine: memory}]\n",
                       "pb.yaml");
}

TEST(ProtobufSerializerTest, TypedClientFromConfig) {
  const Config config = protobuf_config("{type: protobuf, message: cairn.test.User}");
  auto users = open_client<std::string, test::User>(config, "users");
  users.put("ada", ada());
  EXPECT_EQ(users.get("ada")->emails(0), "ada@example.org");
  EXPECT_THROW((open_client<std::string, test::Other>(config, "users")), InvalidArgument)
      << "the config names another message type";
  // The untyped serializer of the same config prints the JSON mapping.
  const auto serializers = config.serializers("users");
  EXPECT_EQ(serializers.value->format_text(ada().SerializeAsString()),
            R"({"name":"Ada","id":7,"emails":["ada@example.org"]})");
}

TEST(ProtobufSerializerTest, MessagesFromADescriptorSetFile) {
  const char* desc = std::getenv("CAIRN_TEST_DESCRIPTORS");
  ASSERT_NE(desc, nullptr) << "the test runner passes the descriptor set";
  const Config config = protobuf_config(std::string("{type: protobuf, message: cairn.test.User, "
                                                    "descriptors: \"") + desc + "\"}");
  const auto s = config.serializers("users").value;
  const std::string bytes = s->parse_text(R"({"name":"Cy","id":9})");
  EXPECT_EQ(s->format_text(bytes), R"({"name":"Cy","id":9})");
  test::User u;
  ASSERT_TRUE(u.ParseFromString(bytes));
  EXPECT_EQ(u.id(), 9);
  EXPECT_THROW(s->format_text("\xff\xff"), Corruption);
  EXPECT_THROW(protobuf_config("{type: protobuf, message: nope.Nope}").serializers("users"),
               ConfigError);
  EXPECT_THROW(protobuf_config(std::string("{type: protobuf, message: cairn.test.Missing, "
                                           "descriptors: \"") + desc + "\"}")
                   .serializers("users"),
               ConfigError);
  EXPECT_THROW(protobuf_config("{type: protobuf, message: x.Y, descriptors: /nonexistent}")
                   .serializers("users"),
               ConfigError);
}

}  // namespace
}  // namespace cairn::testing
