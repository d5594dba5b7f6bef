// JsonSerializer: Voldemort's schema'd binary JSON. A schema is itself JSON
// — "int32", ["string"], {"name":"string","id":"int32"} — over the types
// boolean, int8, int16, int32, int64, float32, float64, date, string, bytes,
// arrays ([T]) and objects ({field: T, ...}). Values are cairn::Json trees.
//
// The encoding stores no field names (the schema has them: fields are
// written in name order), numbers at their declared width, and a null for
// every type. Every value starts with a one-byte schema version: a store may
// list several schemas; writes use the newest and reads use the one the
// value was written with, so old values stay readable while a schema
// evolves. The byte format is in docs/formats.md ("JSON values").
//
// Immutable and thread-safe.

#ifndef CAIRN_JSON_SERIALIZER_H_
#define CAIRN_JSON_SERIALIZER_H_

#include <memory>
#include <vector>

#include "cairn/export.h"
#include "cairn/json.h"
#include "cairn/serializer.h"

CAIRN_API_BEGIN
namespace cairn {

class JsonSerializer final : public Serializer<Json> {
 public:
  // `schemas[i]` is schema version i (at most 256); writes use the last.
  // A schema may also be a JSON string holding schema text. Throws
  // InvalidArgument naming the problem in a bad schema.
  static std::shared_ptr<const JsonSerializer> make(const std::vector<Json>& schemas);
  ~JsonSerializer() override;

  // Writes `value` with the newest schema. Throws InvalidArgument naming the
  // field path (e.g. `emails[2]`, `address.city`) when the value does not
  // match: a missing or unknown field, a wrong type, a number out of range
  // (including the type's null sentinel, such as INT32_MIN for int32).
  void write(const Json& value, std::string* out) const override;
  // Reads with the schema of the version the bytes carry. Dates read as
  // integers (ms since the epoch), bytes fields as strings of raw bytes.
  // Throws Corruption (with the field path) on malformed bytes or an unknown
  // version.
  Json read(std::string_view bytes) const override;

  // JSON text -> bytes, against the newest schema. Dates may be written as
  // "2026-11-22T10:00:00Z" (UTC, optional .mmm) or integers; bytes fields as
  // base64 strings.
  std::string parse_text(std::string_view text) const override;
  // Bytes -> JSON text, dates as ISO-8601 UTC strings, bytes as base64.
  std::string format_text(std::string_view bytes) const override;
  std::string describe() const override;

  int versions() const;
  // Schema version `v` as canonical JSON text (fields sorted).
  std::string schema_text(int v) const;

  struct CAIRN_INTERNAL Impl;

 private:
  explicit JsonSerializer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cairn
CAIRN_API_END

#endif  // CAIRN_JSON_SERIALIZER_H_
