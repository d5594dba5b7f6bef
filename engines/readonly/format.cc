#include "engines/readonly/format.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "cairn/errors.h"
#include "cairn/json.h"
#include "engines/log/crc32c.h"

namespace cairn::internal::readonly {

namespace fs = std::filesystem;

namespace {

void put_u32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

uint32_t get_u32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

[[noreturn]] void corrupt(const std::string& where, const std::string& what) {
  throw Corruption(where + ": " + what);
}

// `name` in backquotes. (Built by appending: GCC 12 at -O3 reports a
// false -Wrestrict for "literal" + std::string(name).)
std::string quoted(std::string_view name) {
  std::string q = "`";
  q.append(name);
  q += '`';
  return q;
}

const Json& field(const Json& obj, std::string_view name, const std::string& where) {
  const Json* f = obj.find(name);
  if (f == nullptr) corrupt(where, "no " + quoted(name));
  return *f;
}

uint64_t uint_field(const Json& obj, std::string_view name, const std::string& where,
                    uint64_t max) {
  const Json& f = field(obj, name, where);
  if (!f.is_int() || f.as_int() < 0 || static_cast<uint64_t>(f.as_int()) > max) {
    corrupt(where, quoted(name) + " is not an integer from 0 to " + std::to_string(max));
  }
  return static_cast<uint64_t>(f.as_int());
}

FileMeta file_meta(const Json& obj, std::string_view name, const std::string& expected,
                   const std::string& where) {
  const Json& f = field(obj, name, where);
  if (!f.is_object()) corrupt(where, quoted(name) + " is not an object");
  FileMeta m;
  const Json& file = field(f, "file", where);
  if (!file.is_string() || file.as_string() != expected) {
    corrupt(where, "expected file '" + expected + "', found " + file.dump());
  }
  m.file = expected;
  m.bytes = uint_field(f, "bytes", where, uint64_t{1} << 62);
  m.crc32c = static_cast<uint32_t>(uint_field(f, "crc32c", where, UINT32_MAX));
  if (m.bytes < kHeaderSize) corrupt(where, "file '" + expected + "' is shorter than its header");
  return m;
}

}  // namespace

uint64_t VersionMeta::bytes() const {
  uint64_t b = 0;
  for (const ChunkMeta& c : chunks) b += c.index.bytes + c.data.bytes;
  return b;
}

VersionMeta VersionMeta::subset(const std::vector<uint32_t>& partitions) const {
  VersionMeta out = *this;
  out.chunks.clear();
  out.records = 0;
  const std::set<uint32_t> want(partitions.begin(), partitions.end());
  for (const ChunkMeta& c : chunks) {
    if (!want.contains(c.partition)) continue;
    out.chunks.push_back(c);
    out.records += c.records;
  }
  return out;
}

std::string VersionMeta::to_json() const {
  Json::Array list;
  auto file = [](const FileMeta& f) {
    return Json::object({{"file", f.file}, {"bytes", f.bytes}, {"crc32c", f.crc32c}});
  };
  for (const ChunkMeta& c : chunks) {
    list.push_back(Json::object({{"partition", c.partition},
                                 {"records", c.records},
                                 {"index", file(c.index)},
                                 {"data", file(c.data)}}));
  }
  return Json::object({{"format", kFormatName},
                       {"format_version", kFormat},
                       {"hash", "fmix64(fnv1a64(key))"},
                       {"ring_partitions", ring_partitions},
                       {"records", records},
                       {"store", store},
                       {"created_ms", created_ms},
                       {"chunks", Json(std::move(list))}})
             .dump() + "\n";
}

VersionMeta VersionMeta::parse(std::string_view text, const std::string& where) {
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Error& e) {
    corrupt(where, std::string("not JSON: ") + e.what());
  }
  if (!j.is_object()) corrupt(where, "not a JSON object");
  const Json& format = field(j, "format", where);
  if (!format.is_string() || format.as_string() != kFormatName) {
    corrupt(where, "not a cairn read-only version (format " + format.dump() + ")");
  }
  if (uint_field(j, "format_version", where, UINT32_MAX) != kFormat) {
    corrupt(where, "format_version " + field(j, "format_version", where).dump() +
                       " is not one this cairn reads (" + std::to_string(kFormat) + ")");
  }
  VersionMeta m;
  m.ring_partitions = static_cast<uint32_t>(uint_field(j, "ring_partitions", where, 1 << 20));
  if (m.ring_partitions == 0) corrupt(where, "`ring_partitions` is 0");
  if (const Json* s = j.find("store"); s != nullptr && s->is_string()) m.store = s->as_string();
  if (const Json* t = j.find("created_ms"); t != nullptr && t->is_int()) m.created_ms = t->as_int();
  const Json& chunks = field(j, "chunks", where);
  if (!chunks.is_array()) corrupt(where, "`chunks` is not a list");
  uint64_t total = 0;
  for (const Json& c : chunks.as_array()) {
    if (!c.is_object()) corrupt(where, "a chunk is not an object");
    ChunkMeta chunk;
    chunk.partition = static_cast<uint32_t>(uint_field(c, "partition", where, UINT32_MAX));
    if (chunk.partition >= m.ring_partitions) {
      corrupt(where, "partition " + std::to_string(chunk.partition) + " is not below " +
                         std::to_string(m.ring_partitions));
    }
    if (!m.chunks.empty() && chunk.partition <= m.chunks.back().partition) {
      corrupt(where, "partitions are not listed once each in ascending order");
    }
    chunk.records = uint_field(c, "records", where, uint64_t{1} << 58);
    chunk.index = file_meta(c, "index", index_file(chunk.partition), where);
    chunk.data = file_meta(c, "data", data_file(chunk.partition), where);
    if (chunk.index.bytes != kHeaderSize + chunk.records * kEntrySize) {
      corrupt(where, "index of partition " + std::to_string(chunk.partition) + " has " +
                         std::to_string(chunk.index.bytes) + " bytes, not 32 + 16 x " +
                         std::to_string(chunk.records));
    }
    total += chunk.records;
    m.chunks.push_back(std::move(chunk));
  }
  m.records = uint_field(j, "records", where, uint64_t{1} << 58);
  if (m.records != total) corrupt(where, "`records` is not the sum of the chunks' records");
  return m;
}

std::string header(const char* magic, uint32_t partition, uint32_t ring_partitions) {
  std::string h(magic, 8);
  put_u32(&h, kFormat);
  put_u32(&h, partition);
  put_u32(&h, ring_partitions);
  h.resize(kHeaderSize, '\0');
  return h;
}

void check_header(std::string_view bytes, const char* magic, uint32_t partition,
                  uint32_t ring_partitions, const std::string& where) {
  if (bytes.size() < kHeaderSize || bytes.substr(0, 8) != std::string_view(magic, 8)) {
    corrupt(where, "not a cairn read-only file (bad magic)");
  }
  if (get_u32(bytes.data() + 8) != kFormat) corrupt(where, "unknown format version");
  if (get_u32(bytes.data() + 12) != partition || get_u32(bytes.data() + 16) != ring_partitions) {
    corrupt(where, "header is for partition " + std::to_string(get_u32(bytes.data() + 12)) +
                       " of " + std::to_string(get_u32(bytes.data() + 16)) + ", not " +
                       std::to_string(partition) + " of " + std::to_string(ring_partitions));
  }
}

uint32_t file_crc32c(const std::string& path, uint64_t* size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError("cannot open " + path + ": " + std::strerror(errno));
  std::string buf(1 << 20, '\0');
  uint32_t crc = 0;
  uint64_t total = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      throw IoError("cannot read " + path + ": " + std::strerror(err));
    }
    if (n == 0) break;
    crc = crc32c(std::string_view(buf.data(), static_cast<size_t>(n)), crc);
    total += static_cast<uint64_t>(n);
  }
  ::close(fd);
  if (size != nullptr) *size = total;
  return crc;
}

std::string index_file(uint32_t partition) { return std::to_string(partition) + ".index"; }
std::string data_file(uint32_t partition) { return std::to_string(partition) + ".data"; }

std::string version_dir(const std::string& root, uint64_t version) {
  return (fs::path(root) / ("version-" + std::to_string(version))).string();
}

namespace {

// N for "version-N" (no leading zeros, N >= 1), else 0.
uint64_t parse_version_name(const std::string& name) {
  constexpr std::string_view prefix = "version-";
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return 0;
  const std::string digits = name.substr(prefix.size());
  if (digits.size() > 18 || digits[0] == '0') return 0;
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return 0;
  }
  return std::stoull(digits);
}

}  // namespace

std::vector<uint64_t> list_versions(const std::string& root) {
  std::vector<uint64_t> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    if (!e.is_directory() || e.is_symlink()) continue;
    if (uint64_t v = parse_version_name(e.path().filename().string()); v != 0) out.push_back(v);
  }
  if (ec && ec != std::errc::no_such_file_or_directory) {
    throw IoError("cannot list " + root + ": " + ec.message());
  }
  std::sort(out.begin(), out.end());
  return out;
}

uint64_t latest_version(const std::string& root) {
  const fs::path link = fs::path(root) / "latest";
  std::error_code ec;
  if (!fs::is_symlink(fs::symlink_status(link, ec))) {
    if (fs::exists(fs::symlink_status(link, ec))) {
      throw Corruption(link.string() + " is not a symlink to a version-N directory");
    }
    return 0;
  }
  const fs::path target = fs::read_symlink(link, ec);
  if (ec) throw IoError("cannot read " + link.string() + ": " + ec.message());
  const uint64_t v = parse_version_name(target.string());
  if (v == 0) {
    throw Corruption(link.string() + " points to '" + target.string() +
                     "', not a version-N directory");
  }
  return v;
}

void sync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError("cannot open " + path + ": " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw IoError("cannot sync " + path + ": " + std::strerror(err));
}

void set_latest(const std::string& root, uint64_t version) {
  const fs::path tmp = fs::path(root) / "latest.tmp";
  std::error_code ec;
  fs::remove(tmp, ec);
  fs::create_symlink("version-" + std::to_string(version), tmp, ec);
  if (ec) throw IoError("cannot create " + tmp.string() + ": " + ec.message());
  const fs::path link = fs::path(root) / "latest";
  const fs::path before = fs::read_symlink(link, ec);  // empty if none
  fs::rename(tmp, link, ec);
  if (ec) throw IoError("cannot rename " + tmp.string() + " to latest: " + ec.message());
  try {
    sync_path(root);
  } catch (const IoError&) {
    // Not durable, so not done: put the old pointer back (as well as this
    // directory still can) and say so, rather than serve the old version
    // now and the new one after a restart.
    fs::remove(tmp, ec);
    if (before.empty()) {
      fs::remove(link, ec);
    } else {
      fs::create_symlink(before, tmp, ec);
      if (!ec) fs::rename(tmp, link, ec);
    }
    throw;
  }
}

}  // namespace cairn::internal::readonly
