// ReadOnlyBuilder: an external sort of (partition, hash, key) into the
// files of engines/readonly/format.h.

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <queue>

#include "cairn/errors.h"
#include "cairn/readonly_store.h"
#include "cairn/ring.h"
#include "cairn/versioned.h"
#include "core/varint.h"
#include "engines/log/crc32c.h"
#include "engines/readonly/format.h"

namespace cairn {

namespace fs = std::filesystem;
namespace ro = internal::readonly;

namespace {

constexpr size_t kBuffer = size_t{1} << 20;
constexpr uint64_t kProgressEvery = 1 << 16;

// A file written through a large buffer, checksummed as it goes.
class OutFile {
 public:
  explicit OutFile(std::string path) : path_(std::move(path)) {
    f_ = std::fopen(path_.c_str(), "wbx");
    if (f_ == nullptr) throw IoError("cannot create " + path_ + ": " + std::strerror(errno));
    std::setvbuf(f_, nullptr, _IOFBF, kBuffer);
  }
  ~OutFile() {
    if (f_ != nullptr) std::fclose(f_);
  }
  OutFile(const OutFile&) = delete;
  OutFile& operator=(const OutFile&) = delete;

  void write(std::string_view bytes) {
    if (std::fwrite(bytes.data(), 1, bytes.size(), f_) != bytes.size()) {
      throw IoError("cannot write " + path_ + ": " + std::strerror(errno));
    }
    crc_ = internal::crc32c(bytes, crc_);
    size_ += bytes.size();
  }
  // Flushes, syncs and closes.
  void close(bool sync) {
    const bool ok = std::fflush(f_) == 0 && (!sync || ::fsync(fileno(f_)) == 0);
    const int err = errno;
    std::fclose(f_);
    f_ = nullptr;
    if (!ok) throw IoError("cannot write " + path_ + ": " + std::strerror(err));
  }
  uint64_t size() const { return size_; }
  uint32_t crc() const { return crc_; }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  uint32_t crc_ = 0;
  uint64_t size_ = 0;
};

// A record on its way through the sort: its encoding is
// fixed32 partition, fixed64 hash, varint key size, varint value size, key, value.
struct Record {
  uint32_t partition = 0;
  uint64_t hash = 0;
  std::string key, value;
};

bool before(uint32_t pa, uint64_t ha, std::string_view ka, uint32_t pb, uint64_t hb,
            std::string_view kb) {
  if (pa != pb) return pa < pb;
  if (ha != hb) return ha < hb;
  return ka < kb;
}

void encode(std::string* out, uint32_t partition, uint64_t hash, std::string_view key,
            std::string_view value) {
  char p[4];
  std::memcpy(p, &partition, 4);
  out->append(p, 4);
  internal::put_fixed64(out, hash);
  internal::put_varint(out, key.size());
  internal::put_varint(out, value.size());
  out->append(key);
  out->append(value);
}

// Reads a sorted run back, one record at a time.
class RunReader {
 public:
  explicit RunReader(const std::string& path) : path_(path) {
    f_ = std::fopen(path.c_str(), "rb");
    if (f_ == nullptr) throw IoError("cannot open " + path + ": " + std::strerror(errno));
    std::setvbuf(f_, nullptr, _IOFBF, kBuffer);
  }
  ~RunReader() { std::fclose(f_); }
  RunReader(const RunReader&) = delete;
  RunReader& operator=(const RunReader&) = delete;

  // The next record into `rec`; false at the end.
  bool next(Record* rec) {
    char head[12];
    const size_t n = std::fread(head, 1, sizeof head, f_);
    if (n == 0 && std::feof(f_)) return false;
    if (n != sizeof head) fail();
    std::memcpy(&rec->partition, head, 4);
    std::memcpy(&rec->hash, head + 4, 8);
    if constexpr (std::endian::native == std::endian::big) rec->hash = __builtin_bswap64(rec->hash);
    const uint64_t k = varint(), v = varint();
    rec->key.resize(k);
    rec->value.resize(v);
    if (std::fread(rec->key.data(), 1, k, f_) != k || std::fread(rec->value.data(), 1, v, f_) != v) {
      fail();
    }
    return true;
  }

 private:
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const int c = getc_unlocked(f_);
      if (c == EOF) fail();
      v |= static_cast<uint64_t>(c & 0x7f) << shift;
      if ((c & 0x80) == 0) return v;
    }
    fail();
  }
  [[noreturn]] void fail() { throw IoError("sorted run " + path_ + " is truncated"); }

  std::string path_;
  std::FILE* f_;
};

}  // namespace

struct ReadOnlyBuilder::Impl {
  ReadOnlyBuildOptions o;
  std::string tmp;  // the version being written, renamed to o.dir at the end
  std::string runs_dir;
  std::vector<std::string> runs;
  // The run in memory: encoded records, and references sorted by key order.
  struct Ref {
    uint64_t hash;
    uint32_t partition;
    uint32_t key_size;
    uint64_t offset;  // of the key in `arena`
  };
  std::string arena;
  std::vector<Ref> refs;
  ReadOnlyBuildResult result;
  bool finished = false;

  std::string_view key_of(const Ref& r) const { return {arena.data() + r.offset, r.key_size}; }

  void sort_refs() {
    std::sort(refs.begin(), refs.end(), [this](const Ref& a, const Ref& b) {
      return before(a.partition, a.hash, key_of(a), b.partition, b.hash, key_of(b));
    });
  }

  void spill() {
    if (refs.empty()) return;
    sort_refs();
    const std::string path = (fs::path(runs_dir) / ("run-" + std::to_string(runs.size()))).string();
    OutFile out(path);
    std::string rec;
    for (const Ref& r : refs) {
      rec.clear();
      encode(&rec, r.partition, r.hash, key_of(r),
             std::string_view(arena.data() + r.offset + r.key_size, value_size(r)));
      out.write(rec);
    }
    out.close(false);
    runs.push_back(path);
    arena.clear();
    refs.clear();
  }

  // The value size is kept in the arena just before the key (4 bytes).
  static constexpr size_t kSizeField = 4;
  uint32_t value_size(const Ref& r) const {
    uint32_t v;
    std::memcpy(&v, arena.data() + r.offset - kSizeField, kSizeField);
    return v;
  }
};

ReadOnlyBuilder::ReadOnlyBuilder(ReadOnlyBuildOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& d = *impl_;
  d.o = std::move(options);
  if (d.o.dir.empty()) throw InvalidArgument("the read-only build needs an output directory");
  if (d.o.ring_partitions == 0) throw InvalidArgument("ring_partitions must be at least 1");
  if (d.o.memory_bytes < (size_t{1} << 20)) throw InvalidArgument("memory_bytes must be at least 1 MiB");
  std::error_code ec;
  if (fs::exists(d.o.dir, ec)) {
    throw FailedPrecondition(d.o.dir + " exists already: a build writes a new directory");
  }
  const fs::path dir = fs::absolute(d.o.dir);
  d.tmp = dir.string() + ".building-" + std::to_string(::getpid());
  fs::remove_all(d.tmp, ec);
  fs::create_directories(d.tmp, ec);
  if (ec) throw IoError("cannot create " + d.tmp + ": " + ec.message());
  const fs::path temp = d.o.temp_dir.empty() ? fs::path(d.tmp) : fs::path(d.o.temp_dir);
  d.runs_dir = (temp / (".runs-" + std::to_string(::getpid()))).string();
  fs::create_directories(d.runs_dir, ec);
  if (ec) {
    const std::string why = ec.message();
    fs::remove_all(d.tmp, ec);  // no destructor runs: leave nothing behind
    throw IoError("cannot create " + d.runs_dir + ": " + why);
  }
}

ReadOnlyBuilder::~ReadOnlyBuilder() {
  std::error_code ec;
  fs::remove_all(impl_->runs_dir, ec);
  if (!impl_->finished) fs::remove_all(impl_->tmp, ec);
}

void ReadOnlyBuilder::add(std::string_view key, std::string_view value) {
  Impl& d = *impl_;
  if (d.finished) throw FailedPrecondition("the build is finished");
  check_key(d.o.store.empty() ? "readonly" : d.o.store, key, d.o.max_key_size);
  check_value(d.o.store.empty() ? "readonly" : d.o.store, key, value, d.o.max_value_size);
  const uint64_t hash = Ring::hash(key);
  const auto size = static_cast<uint32_t>(value.size());
  char field[Impl::kSizeField];
  std::memcpy(field, &size, sizeof field);
  d.arena.append(field, sizeof field);
  d.refs.push_back({hash, static_cast<uint32_t>(hash % d.o.ring_partitions),
                    static_cast<uint32_t>(key.size()), d.arena.size()});
  d.arena.append(key);
  d.arena.append(value);
  ++d.result.records;
  d.result.input_bytes += key.size() + value.size();
  if (d.arena.size() + d.refs.size() * sizeof(Impl::Ref) >= d.o.memory_bytes) d.spill();
  if (d.o.progress && d.result.records % kProgressEvery == 0) {
    d.o.progress("sort", d.result.records, d.result.input_bytes);
  }
}

ReadOnlyBuildResult ReadOnlyBuilder::finish() {
  Impl& d = *impl_;
  if (d.finished) throw FailedPrecondition("the build is finished");
  if (d.o.progress) d.o.progress("sort", d.result.records, d.result.input_bytes);
  const bool in_memory = d.runs.empty();
  if (in_memory) {
    d.sort_refs();
  } else {
    d.spill();
  }
  d.result.runs = static_cast<uint32_t>(d.runs.size());

  // The merged stream, from memory or from the runs.
  size_t next_ref = 0;
  std::vector<std::unique_ptr<RunReader>> readers;
  std::vector<Record> heads;
  auto later = [&](size_t a, size_t b) {
    return before(heads[b].partition, heads[b].hash, heads[b].key, heads[a].partition,
                  heads[a].hash, heads[a].key);
  };
  std::priority_queue<size_t, std::vector<size_t>, decltype(later)> queue(later);
  for (const std::string& run : d.runs) {
    readers.push_back(std::make_unique<RunReader>(run));
    heads.emplace_back();
    if (readers.back()->next(&heads.back())) queue.push(heads.size() - 1);
  }
  Record merged;
  // The next record in order: partition, hash, key, value. False at the end.
  auto next = [&](uint32_t* p, uint64_t* h, std::string_view* k, std::string_view* v) {
    if (in_memory) {
      if (next_ref == d.refs.size()) return false;
      const Impl::Ref& r = d.refs[next_ref++];
      *p = r.partition;
      *h = r.hash;
      *k = d.key_of(r);
      *v = std::string_view(d.arena.data() + r.offset + r.key_size, d.value_size(r));
      return true;
    }
    if (queue.empty()) return false;
    const size_t i = queue.top();
    queue.pop();
    std::swap(merged, heads[i]);
    if (readers[i]->next(&heads[i])) queue.push(i);
    *p = merged.partition;
    *h = merged.hash;
    *k = merged.key;
    *v = merged.value;
    return true;
  };

  ro::VersionMeta meta;
  meta.ring_partitions = d.o.ring_partitions;
  meta.store = d.o.store;
  meta.created_ms = now_ms();
  std::unique_ptr<OutFile> index, data;
  uint32_t current = 0;
  uint64_t records_in_chunk = 0;
  auto open_chunk = [&](uint32_t p) {
    index = std::make_unique<OutFile>((fs::path(d.tmp) / ro::index_file(p)).string());
    data = std::make_unique<OutFile>((fs::path(d.tmp) / ro::data_file(p)).string());
    index->write(ro::header(ro::kIndexMagic, p, d.o.ring_partitions));
    data->write(ro::header(ro::kDataMagic, p, d.o.ring_partitions));
    records_in_chunk = 0;
  };
  auto close_chunk = [&](uint32_t p) {
    index->close(true);
    data->close(true);
    ro::ChunkMeta c;
    c.partition = p;
    c.records = records_in_chunk;
    c.index = {ro::index_file(p), index->size(), index->crc()};
    c.data = {ro::data_file(p), data->size(), data->crc()};
    d.result.output_bytes += index->size() + data->size();
    meta.records += records_in_chunk;
    meta.chunks.push_back(std::move(c));
  };
  open_chunk(0);
  std::string prev_key;
  uint64_t prev_hash = 0;
  uint32_t prev_partition = UINT32_MAX;
  uint64_t done = 0, done_bytes = 0;
  std::string rec, entry;
  uint32_t p;
  uint64_t h;
  std::string_view k, v;
  while (next(&p, &h, &k, &v)) {
    if (p == prev_partition && h == prev_hash && k == prev_key) {
      throw InvalidArgument("key " + printable_key(k) +
                            " appears more than once in the input: a read-only version holds "
                            "one value per key");
    }
    prev_partition = p;
    prev_hash = h;
    prev_key.assign(k);
    while (current < p) {
      close_chunk(current);
      open_chunk(++current);
    }
    entry.clear();
    internal::put_fixed64(&entry, h);
    internal::put_fixed64(&entry, data->size());
    index->write(entry);
    rec.clear();
    internal::put_varint(&rec, k.size());
    internal::put_varint(&rec, v.size());
    rec.append(k);
    rec.append(v);
    data->write(rec);
    ++records_in_chunk;
    ++done;
    done_bytes += k.size() + v.size();
    if (d.o.progress && done % kProgressEvery == 0) d.o.progress("merge", done, done_bytes);
  }
  close_chunk(current);
  while (current + 1 < d.o.ring_partitions) {
    open_chunk(++current);
    close_chunk(current);
  }
  if (d.o.progress) d.o.progress("merge", done, done_bytes);

  {
    const std::string meta_path = (fs::path(d.tmp) / ro::kMetadataFile).string();
    OutFile m(meta_path);
    m.write(meta.to_json());
    m.close(true);
  }
  std::error_code ec;
  fs::remove_all(d.runs_dir, ec);
  ro::sync_path(d.tmp);
  fs::rename(d.tmp, d.o.dir, ec);
  if (ec) throw IoError("cannot rename " + d.tmp + " to " + d.o.dir + ": " + ec.message());
  ro::sync_path(fs::absolute(d.o.dir).parent_path().string());
  d.finished = true;
  return d.result;
}

}  // namespace cairn
