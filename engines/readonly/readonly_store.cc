#include "cairn/readonly_store.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cairn/errors.h"
#include "cairn/log.h"
#include "cairn/registry.h"
#include "catalogue/builtin.h"
#include "cairn/ring.h"
#include "core/varint.h"
#include "engines/log/crc32c.h"
#include "engines/memory/epoch.h"
#include "engines/readonly/version.h"

namespace cairn {

namespace fs = std::filesystem;
using internal::ReadOnlyVersion;
namespace ro = internal::readonly;

// ---------------------------------------------------------------------------
// ReadOnlyVersion

namespace internal {

namespace {

std::string read_whole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot read " + path + ": " + std::strerror(errno));
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

uint64_t load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
  return v;
}

}  // namespace

ReadOnlyVersion::ReadOnlyVersion(uint64_t n, std::string d, bool verify)
    : number(n), dir(std::move(d)) {
  const std::string meta_path = (fs::path(dir) / ro::kMetadataFile).string();
  if (!fs::exists(meta_path)) {
    throw Corruption(dir + " has no " + ro::kMetadataFile + ": not a complete version");
  }
  meta = ro::VersionMeta::parse(read_whole(meta_path), meta_path);
  chunks.resize(meta.ring_partitions);
  auto map_file = [&](const ro::FileMeta& f, uint32_t partition, const char* magic) {
    const std::string path = (fs::path(dir) / f.file).string();
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Corruption("cannot open " + path + ": " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      throw IoError("cannot stat " + path + ": " + std::strerror(err));
    }
    if (static_cast<uint64_t>(st.st_size) != f.bytes) {
      ::close(fd);
      throw Corruption(path + " has " + std::to_string(st.st_size) + " bytes, not the " +
                       std::to_string(f.bytes) + " its metadata says (truncated or replaced)");
    }
    void* p = ::mmap(nullptr, f.bytes, PROT_READ, MAP_SHARED, fd, 0);
    const int err = errno;
    ::close(fd);
    if (p == MAP_FAILED) throw IoError("cannot map " + path + ": " + std::strerror(err));
    maps.emplace_back(p, f.bytes);
    const std::string_view bytes(static_cast<const char*>(p), f.bytes);
    ro::check_header(bytes, magic, partition, meta.ring_partitions, path);
    if (verify && internal::crc32c(bytes) != f.crc32c) {
      throw Corruption(path + ": checksum does not match its metadata (the file is damaged)");
    }
    return static_cast<const char*>(p);
  };
  try {
    for (const ro::ChunkMeta& c : meta.chunks) {
      Chunk& chunk = chunks[c.partition];
      chunk.index = map_file(c.index, c.partition, ro::kIndexMagic) + ro::kHeaderSize;
      chunk.entries = c.records;
      chunk.data = map_file(c.data, c.partition, ro::kDataMagic);
      chunk.data_size = c.data.bytes;
      // Gets touch the index at random: no read-ahead of pages not asked for.
      ::madvise(const_cast<char*>(chunk.data), chunk.data_size, MADV_RANDOM);
    }
  } catch (...) {
    for (auto& [p, size] : maps) ::munmap(p, size);
    throw;
  }
}

ReadOnlyVersion::~ReadOnlyVersion() {
  for (auto& [p, size] : maps) ::munmap(p, size);
}

uint64_t ReadOnlyVersion::entry_hash(const Chunk& c, uint64_t i) {
  return load64(c.index + i * ro::kEntrySize);
}

uint64_t ReadOnlyVersion::entry_offset(const Chunk& c, uint64_t i) {
  return load64(c.index + i * ro::kEntrySize + 8);
}

void ReadOnlyVersion::record(const Chunk& c, uint64_t offset, std::string_view* key,
                             std::string_view* value) const {
  uint64_t key_size = 0, value_size = 0;
  bool ok = offset >= ro::kHeaderSize && offset < c.data_size;
  if (ok) {
    ByteReader r(std::string_view(c.data + offset, c.data_size - offset));
    ok = r.varint(&key_size) && r.varint(&value_size) && r.bytes(key_size, key) &&
         r.bytes(value_size, value);
  }
  if (!ok) {
    throw Corruption(dir + ": a record at offset " + std::to_string(offset) +
                     " of a data file runs past its end (the file is damaged)");
  }
}

bool ReadOnlyVersion::find(std::string_view key, uint64_t hash, std::string_view* value) const {
  const uint64_t partition = hash % chunks.size();
  const Chunk& c = chunks[partition];
  if (c.data == nullptr) {
    // Not one of this node's partitions when the version was fetched: an
    // answer of "absent" would be a lie.
    throw Unavailable(dir + " holds no chunk of partition " + std::to_string(partition) +
                      " (this node did not replicate it when the version was fetched)");
  }
  if (c.entries == 0) return false;
  // Interpolation search: hashes are spread evenly, so a guess from the
  // ends of the range lands within a few entries; a few steps, then halving.
  uint64_t lo = 0, hi = c.entries - 1;
  uint64_t h_lo = entry_hash(c, lo), h_hi = entry_hash(c, hi);
  if (hash < h_lo || hash > h_hi) return false;
  for (int step = 0; hi - lo > 8 && h_hi > h_lo && step < 6; ++step) {
    // (hash - h_lo) / (h_hi - h_lo) of the way from lo to hi; long double
    // keeps 64 bits of mantissa, plenty for a guess.
    const auto frac = static_cast<long double>(hash - h_lo) / static_cast<long double>(h_hi - h_lo);
    const uint64_t mid = std::min(hi, lo + static_cast<uint64_t>(frac * static_cast<long double>(hi - lo)));
    const uint64_t h = entry_hash(c, mid);
    if (h < hash) {
      lo = mid + 1;
      h_lo = entry_hash(c, lo);
    } else if (h > hash) {
      hi = mid - 1;
      h_hi = entry_hash(c, hi);
    } else {
      lo = hi = mid;
    }
    if (hash < h_lo || hash > h_hi) return false;
  }
  // The first entry of the range with a hash not below `hash`.
  while (lo < hi) {
    const uint64_t mid = lo + (hi - lo) / 2;
    if (entry_hash(c, mid) < hash) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  // Back to the first entry of equal hash (found mid-run by interpolation).
  while (lo > 0 && entry_hash(c, lo - 1) == hash) --lo;
  for (uint64_t i = lo; i < c.entries && entry_hash(c, i) == hash; ++i) {
    std::string_view k, v;
    record(c, entry_offset(c, i), &k, &v);
    if (k == key) {
      *value = v;
      return true;
    }
  }
  return false;
}

}  // namespace internal

// ---------------------------------------------------------------------------
// ReadOnlyStore

namespace {

class ReadOnlyIterator final : public StoreIterator {
 public:
  ReadOnlyIterator(std::shared_ptr<ReadOnlyVersion> v,
                   std::shared_ptr<std::atomic<bool>> closed, std::string name)
      : v_(std::move(v)), closed_(std::move(closed)), name_(std::move(name)) {
    versions_.resize(1);
  }

  bool next() override {
    if (closed_->load(std::memory_order_acquire)) {
      throw FailedPrecondition("store '" + name_ + "' is closed");
    }
    if (v_ == nullptr) return false;
    while (partition_ < v_->chunks.size()) {
      const ReadOnlyVersion::Chunk& c = v_->chunks[partition_];
      if (entry_ < c.entries) {
        std::string_view value;
        v_->record(c, ReadOnlyVersion::entry_offset(c, entry_), &key_, &value);
        versions_[0].value.assign(value);
        ++entry_;
        return true;
      }
      ++partition_;
      entry_ = 0;
    }
    return false;
  }
  std::string_view key() const override { return key_; }
  const std::vector<Versioned>& versions() const override { return versions_; }

 private:
  std::shared_ptr<ReadOnlyVersion> v_;
  std::shared_ptr<std::atomic<bool>> closed_;
  std::string name_;
  size_t partition_ = 0;
  uint64_t entry_ = 0;
  std::string_view key_;
  std::vector<Versioned> versions_;
};

}  // namespace

ReadOnlyStore::ReadOnlyStore(ReadOnlyOptions options) : options_(std::move(options)) {
  if (options_.path.empty()) throw InvalidArgument("readonly store '" + options_.name + "' needs a path");
  if (options_.keep < 2) {
    throw InvalidArgument("readonly `keep` must be at least 2 (the live version and one to roll back to)");
  }
  std::error_code ec;
  fs::create_directories(options_.path, ec);
  if (ec) throw IoError("cannot create " + options_.path + ": " + ec.message());
  if (const uint64_t v = ro::latest_version(options_.path); v != 0) {
    const std::string dir = ro::version_dir(options_.path, v);
    if (!fs::is_directory(dir)) {
      throw Corruption(options_.path + "/latest points to version-" + std::to_string(v) +
                       ", which is missing");
    }
    // Opened as it is: a node restarting should not read every file.
    live_ = std::make_shared<ReadOnlyVersion>(v, dir, /*verify=*/false);
    current_.store(live_.get(), std::memory_order_release);
  }
}

ReadOnlyStore::~ReadOnlyStore() { close(); }

void ReadOnlyStore::check_open() const {
  if (closed_->load(std::memory_order_acquire)) {
    throw FailedPrecondition("store '" + options_.name + "' is closed");
  }
}

void ReadOnlyStore::get_into(std::string_view key, std::vector<Versioned>* out) {
  check_open();
  check_key(options_.name, key, options_.max_key_size);
  const uint64_t hash = Ring::hash(key);
  internal::EpochGuard guard;
  const ReadOnlyVersion* v = current_.load(std::memory_order_acquire);
  std::string_view value;
  if (v == nullptr || !v->find(key, hash, &value)) {
    out->clear();
    return;
  }
  out->resize(1);
  Versioned& r = (*out)[0];
  r.value.assign(value);
  r.clock = VectorClock();
  r.write_id = 0;
  r.replaces.clear();
}

PutResult ReadOnlyStore::put_stamped(std::string_view key, const Versioned&, PutReply*) {
  check_open();
  throw Unsupported("store '" + options_.name + "' is read-only: it changes only when a new "
                    "version is swapped in (cairn admin readonly), not by put " +
                    printable_key(key));
}

bool ReadOnlyStore::remove(std::string_view key, const VectorClock&) {
  check_open();
  throw Unsupported("store '" + options_.name + "' is read-only: it changes only when a new "
                    "version is swapped in (cairn admin readonly), not by delete " +
                    printable_key(key));
}

AtomicResult ReadOnlyStore::atomic(std::string_view key, std::string_view, std::string_view) {
  check_open();
  throw Unsupported("store '" + options_.name + "' is read-only: no update of " +
                    printable_key(key));
}

std::unique_ptr<StoreIterator> ReadOnlyStore::scan() {
  check_open();
  std::lock_guard lock(mu_);
  return std::make_unique<ReadOnlyIterator>(live_, closed_, options_.name);
}

void ReadOnlyStore::close() {
  if (closed_->exchange(true)) return;
  std::shared_ptr<ReadOnlyVersion> old;
  {
    std::lock_guard lock(mu_);
    current_.store(nullptr, std::memory_order_release);
    old = std::move(live_);
    prepared_.reset();
  }
  internal::wait_for_readers();
}

std::string ReadOnlyStore::describe() const {
  std::lock_guard lock(mu_);
  std::string s = "readonly(" + options_.name + ", path=" + options_.path +
                  ", keep=" + std::to_string(options_.keep) + ", live=";
  if (live_ == nullptr) return s + "none)";
  return s + "version-" + std::to_string(live_->number) + ", " +
         std::to_string(live_->meta.records) + " records)";
}

uint64_t ReadOnlyStore::live_version() const {
  std::lock_guard lock(mu_);
  return live_ == nullptr ? 0 : live_->number;
}

std::vector<ReadOnlyVersionInfo> ReadOnlyStore::status() const {
  check_open();
  std::lock_guard lock(mu_);
  std::vector<ReadOnlyVersionInfo> out;
  for (uint64_t v : ro::list_versions(options_.path)) {
    ReadOnlyVersionInfo info;
    info.version = v;
    info.live = live_ != nullptr && live_->number == v;
    const std::string meta_path =
        (fs::path(ro::version_dir(options_.path, v)) / ro::kMetadataFile).string();
    try {
      const ro::VersionMeta m = ro::VersionMeta::parse(internal::read_whole(meta_path), meta_path);
      info.records = m.records;
      info.bytes = m.bytes();
      info.ring_partitions = m.ring_partitions;
      for (const ro::ChunkMeta& c : m.chunks) info.partitions.push_back(c.partition);
    } catch (const Error&) {
      // A damaged version is still listed (prepare() says what is wrong).
    }
    out.push_back(std::move(info));
  }
  return out;
}

void ReadOnlyStore::prepare(uint64_t version) {
  check_open();
  const std::string dir = ro::version_dir(options_.path, version);
  if (version == 0 || !fs::is_directory(dir)) {
    throw NotFound("store '" + options_.name + "' has no version " + std::to_string(version) +
                   " under " + options_.path);
  }
  // Mapped and checked outside the lock: reads of every file may be long.
  auto v = std::make_shared<ReadOnlyVersion>(version, dir, options_.verify_on_swap);
  std::lock_guard lock(mu_);
  prepared_ = std::move(v);
}

uint64_t ReadOnlyStore::commit(uint64_t version) {
  check_open();
  std::shared_ptr<ReadOnlyVersion> old;
  uint64_t before = 0;
  {
    std::lock_guard lock(mu_);
    if (prepared_ == nullptr || prepared_->number != version) {
      throw FailedPrecondition("store '" + options_.name + "': version " +
                               std::to_string(version) + " is not prepared" +
                               (prepared_ ? " (version " + std::to_string(prepared_->number) +
                                                " is)"
                                          : ""));
    }
    before = live_ == nullptr ? 0 : live_->number;
    // The versions that go once this one is live, chosen before anything
    // changes (listing may fail; nothing after the switch may). Kept: the
    // new live version; every newer one (fetched for a later swap); the
    // one live until now, so that a swap that fails on another node can
    // come back to it; and older ones, newest first, up to `keep`.
    std::vector<uint64_t> older;
    for (uint64_t v : ro::list_versions(options_.path)) {
      if (v < version && v != before) older.push_back(v);
    }
    std::sort(older.rbegin(), older.rend());
    size_t room = static_cast<size_t>(options_.keep - 1);
    if (before != 0 && before < version) --room;  // `before` takes a place (keep >= 2)
    const std::vector<uint64_t> doomed(older.begin() + static_cast<std::ptrdiff_t>(
                                                           std::min(room, older.size())),
                                       older.end());
    // `latest` first: if it cannot change, nothing has.
    ro::set_latest(options_.path, version);
    old = std::move(live_);
    live_ = std::move(prepared_);
    current_.store(live_.get(), std::memory_order_release);
    for (uint64_t v : doomed) {
      std::error_code ec;
      fs::remove_all(ro::version_dir(options_.path, v), ec);  // the maps of a reader stay valid
      if (ec) {
        log(LogLevel::kWarn, "store '" + options_.name + "': cannot delete old version " +
                                 std::to_string(v) + ": " + ec.message());
      }
    }
  }
  // Gets that began on the old version finish on it; then it is unmapped
  // (unless a scan still holds it).
  internal::wait_for_readers();
  old.reset();
  return before;
}

void ReadOnlyStore::abort() {
  std::lock_guard lock(mu_);
  prepared_.reset();
}

void ReadOnlyStore::discard(uint64_t version) {
  check_open();
  std::lock_guard lock(mu_);
  if (live_ != nullptr && live_->number == version) {
    throw FailedPrecondition("store '" + options_.name + "': version " + std::to_string(version) +
                             " is live; swap to another before discarding it");
  }
  if (prepared_ != nullptr && prepared_->number == version) prepared_.reset();
  std::error_code ec;
  fs::remove_all(ro::version_dir(options_.path, version), ec);
  if (ec) {
    throw IoError("cannot delete " + ro::version_dir(options_.path, version) + ": " + ec.message());
  }
}

uint64_t ReadOnlyStore::swap(uint64_t version) {
  prepare(version);
  return commit(version);
}

uint64_t ReadOnlyStore::previous_version() const {
  const uint64_t live = live_version();
  uint64_t prev = 0;
  for (uint64_t v : ro::list_versions(options_.path)) {
    if (v < live || live == 0) prev = std::max(prev, v);
  }
  return live == 0 ? 0 : prev;
}

std::unique_ptr<Store> make_readonly_engine(const Params& p) {
  ReadOnlyOptions o;
  o.name = p.store();
  o.path = p.get_string("path");
  o.keep = static_cast<int>(p.get_int("keep", o.keep, 2, 1000));
  o.verify_on_swap = p.get_bool("verify_on_swap", o.verify_on_swap);
  o.max_key_size = p.get_bytes("max_key_size", o.max_key_size, 1, 1 << 20);
  return std::make_unique<ReadOnlyStore>(std::move(o));
}

}  // namespace cairn
