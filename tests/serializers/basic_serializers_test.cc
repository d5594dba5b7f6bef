#include <gtest/gtest.h>

#include "cairn/errors.h"
#include "cairn/serializer.h"

namespace cairn {
namespace {

TEST(BasicSerializersTest, IdentityKeepsEveryByte) {
  auto s = identity_serializer();
  const std::string bytes("\x00\xff\x80 x", 5);
  EXPECT_EQ(s->to_bytes(bytes), bytes);
  EXPECT_EQ(s->read(bytes), bytes);
  EXPECT_EQ(s->format_text(bytes), bytes);
}

TEST(BasicSerializersTest, StringValidatesUtf8BothWays) {
  auto s = string_serializer();
  EXPECT_EQ(s->to_bytes("h\xc3\xa9llo"), "h\xc3\xa9llo");
  EXPECT_THROW(s->to_bytes("bad \xc3"), InvalidArgument);
  EXPECT_THROW(s->to_bytes("\xed\xa0\x80"), InvalidArgument) << "an encoded surrogate";
  EXPECT_THROW(s->to_bytes("\xc0\xaf"), InvalidArgument) << "an overlong form";
  EXPECT_THROW(s->read("\xff"), Corruption);
  EXPECT_THROW(s->parse_text("\xfe"), InvalidArgument);
}

TEST(BasicSerializersTest, IntegersAreBigEndianAndChecked) {
  auto i32 = int_serializer(32);
  EXPECT_EQ(i32->to_bytes(0x01020304), std::string("\x01\x02\x03\x04", 4));
  EXPECT_EQ(i32->to_bytes(-1), std::string(4, '\xff'));
  EXPECT_EQ(i32->read(std::string("\xff\xff\xff\xfe", 4)), -2) << "sign-extended";
  EXPECT_EQ(i32->read(i32->to_bytes(INT32_MIN)), INT32_MIN);
  EXPECT_THROW(i32->to_bytes(int64_t{INT32_MAX} + 1), InvalidArgument);
  EXPECT_THROW(i32->read("abc"), Corruption) << "wrong width";
  EXPECT_EQ(i32->parse_text("-17"), i32->to_bytes(-17));
  EXPECT_EQ(i32->format_text(i32->to_bytes(-17)), "-17");
  EXPECT_THROW(i32->parse_text("12x"), InvalidArgument);
  auto i8 = int_serializer(8);
  EXPECT_THROW(i8->to_bytes(128), InvalidArgument);
  EXPECT_EQ(i8->read(i8->to_bytes(-128)), -128);
  auto i64 = int_serializer(64);
  EXPECT_EQ(i64->read(i64->to_bytes(INT64_MIN)), INT64_MIN);
  EXPECT_LT(i64->to_bytes(5), i64->to_bytes(300)) << "byte order is numeric order";
  EXPECT_THROW(int_serializer(24), InvalidArgument);
}

}  // namespace
}  // namespace cairn
