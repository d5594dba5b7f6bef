#include "tools/cairn/readonly.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <typeinfo>

#include "cairn/errors.h"
#include "cairn/forwarding_store.h"
#include "cairn/json.h"
#include "cairn/readonly_store.h"
#include "cairn/registry.h"
#include "cairn/ring.h"
#include "catalogue/builtin.h"
#include "core/config_internal.h"
#include "engines/readonly/format.h"
#include "engines/readonly/receiver.h"
#include "layers/grpc/cairn.grpc.pb.h"
#include "layers/grpc/wire.h"
#include "tools/cairn/credentials.h"
#include "tools/flags.h"

namespace cairn::tools {

namespace {

namespace fs = std::filesystem;
namespace ro = internal::readonly;
using Clock = std::chrono::steady_clock;

constexpr int kOk = 0;
constexpr int kFailed = 4;

std::string mb(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

std::string with_commas(uint64_t n) {
  const std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

// One line of progress on stderr, rewritten in place on a terminal and
// printed at most once every 2 s otherwise (work that ends sooner prints
// none).
class ProgressLine {
 public:
  void show(const std::string& line, bool force = false) {
    const auto now = Clock::now();
    if (!force && now - last_ < (tty_ ? std::chrono::milliseconds(200) : std::chrono::seconds(2))) {
      return;
    }
    last_ = now;
    if (tty_) {
      std::fprintf(stderr, "\r\033[K%s", line.c_str());
    } else {
      std::fprintf(stderr, "%s\n", line.c_str());
    }
    shown_ = true;
  }
  void end() {
    if (tty_ && shown_) std::fprintf(stderr, "\n");
    shown_ = false;
  }

 private:
  const bool tty_ = isatty(2) != 0;
  Clock::time_point last_ = Clock::now();
  bool shown_ = false;
};

// ---- build -----------------------------------------------------------------

// The engine that stands in for `readonly` during a build: every put that
// reaches it becomes a record of the build.
class BuildSink final : public Store {
 public:
  explicit BuildSink(ReadOnlyBuilder* builder) : builder_(builder) {}
  void get_into(std::string_view, std::vector<Versioned>* out) override { out->clear(); }
  PutResult put_stamped(std::string_view key, const Versioned& value, PutReply*) override {
    builder_->add(key, value.value);
    return PutResult::kStored;
  }
  bool remove(std::string_view, const VectorClock&) override {
    throw Unsupported("a read-only build takes puts only");
  }
  std::unique_ptr<StoreIterator> scan() override {
    throw Unsupported("a read-only build cannot be scanned");
  }
  void close() override {}
  std::string describe() const override { return "readonly build"; }

 private:
  ReadOnlyBuilder* builder_;
};

// The text form of a JSON Lines field for a serializer: a json store takes
// the field's JSON as it is; the others take a string's contents, or the
// JSON of a number or boolean.
std::string text_of(const Json& field, const AnySerializer& s) {
  if (s.type() == typeid(Json)) return field.dump();
  if (field.is_string()) return field.as_string();
  if (field.is_null() || field.is_array() || field.is_object()) {
    throw InvalidArgument("expected a string or a number for a " + s.describe() +
                          " field, found " + field.dump());
  }
  return field.dump();
}

// Reads one CSV record (RFC 4180: quoted fields may hold commas, quotes
// doubled, and line breaks) into `fields`; false at the end of input.
bool read_csv_record(std::istream& in, std::vector<std::string>* fields, uint64_t* line) {
  fields->clear();
  int c = in.get();
  if (c == EOF) return false;
  std::string field;
  bool quoted = false, was_quoted = false;
  for (;; c = in.get()) {
    if (quoted) {
      if (c == EOF) throw InvalidArgument("line " + std::to_string(*line) + ": a quoted field never ends");
      if (c == '"') {
        if (in.peek() == '"') {
          in.get();
          field.push_back('"');
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') ++*line;
        field.push_back(static_cast<char>(c));
      }
      continue;
    }
    if (c == '"' && field.empty() && !was_quoted) {
      quoted = was_quoted = true;
    } else if (c == ',') {
      fields->push_back(std::move(field));
      field.clear();
      was_quoted = false;
    } else if (c == '\n' || c == EOF) {
      if (!field.empty() && field.back() == '\r' && !was_quoted) field.pop_back();
      fields->push_back(std::move(field));
      ++*line;
      return true;
    } else if (c == '\r' && was_quoted) {
      // The end of a quoted last field before \r\n.
    } else {
      if (was_quoted) {
        throw InvalidArgument("line " + std::to_string(*line) +
                              ": text after a quoted field's closing quote");
      }
      field.push_back(static_cast<char>(c));
    }
  }
}

std::string format_of(const ReadOnlyBuildFlags& f) {
  if (!f.format.empty()) {
    if (f.format != "jsonl" && f.format != "csv") {
      throw UsageError("--format is jsonl or csv, not '" + f.format + "'");
    }
    return f.format;
  }
  const std::string ext = fs::path(f.input).extension().string();
  if (ext == ".jsonl" || ext == ".ndjson" || ext == ".json") return "jsonl";
  if (ext == ".csv") return "csv";
  throw UsageError("cannot tell the format of '" + f.input +
                   "' from its name: give --format jsonl or --format csv");
}

}  // namespace

int build_readonly(const Config& config, const std::string& store, const ReadOnlyBuildFlags& f) {
  if (f.out.empty()) throw UsageError("build-readonly needs --out DIR");
  if (f.input.empty() == f.from_store.empty()) {
    throw UsageError("build-readonly needs an INPUT file (or - for stdin), or --from-store NAME");
  }
  const uint32_t q =
      ConfigInternal::partitioned(config, store) ? Ring(config.cluster()).partitions() : 1;
  const StoreSerializers ser = config.serializers(store);

  ProgressLine progress;
  const auto start = Clock::now();
  ReadOnlyBuildOptions o;
  o.dir = f.out;
  o.ring_partitions = q;
  o.memory_bytes = f.memory;
  o.store = store;
  o.progress = [&](std::string_view phase, uint64_t records, uint64_t bytes) {
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    char rate[32];
    std::snprintf(rate, sizeof rate, "%.1f MB/s", s > 0 ? static_cast<double>(bytes) / 1e6 / s : 0.0);
    progress.show(std::string(phase == "sort" ? "reading and sorting" : "writing chunks") + ": " +
                  with_commas(records) + " records, " + mb(bytes) + " (" + rate + ")");
  };
  // The layers the engine sits under on a node, over the build; the
  // builder takes the engine's own key limit.
  std::unique_ptr<ReadOnlyBuilder> builder;
  LayerRegistry registry;
  add_builtins(registry);
  ConfigInternal::replace_engine(registry, "readonly", [&](const Params& p) -> std::unique_ptr<Store> {
    (void)p.get_string("path");
    (void)p.get_int("keep", 2, 2, 1000);
    (void)p.get_bool("verify_on_swap", true);
    o.max_key_size = p.get_bytes("max_key_size", o.max_key_size, 1, 1 << 20);
    builder = std::make_unique<ReadOnlyBuilder>(o);
    return std::make_unique<BuildSink>(builder.get());
  });
  std::unique_ptr<Store> sink = ConfigInternal::open_replica(config, store, registry);
  if (builder == nullptr) {
    throw UsageError("store '" + store + "' is not a read-only store: its engine is not "
                     "`readonly` (docs/readonly.md)");
  }

  uint64_t records = 0;
  auto add = [&](std::string_view key, std::string_view value) {
    sink->put(key, Versioned{std::string(value), VectorClock()});
    ++records;
  };
  std::string source;
  if (!f.from_store.empty()) {
    const Config from = f.from_config.empty() ? config : Config::load(f.from_config);
    std::unique_ptr<Store> src = from.open(f.from_store);
    source = "store '" + f.from_store + "'";
    for (auto it = src->scan(); it->next();) {
      if (it->versions().size() != 1) {
        throw InvalidArgument("key " + printable_key(it->key()) + " of store '" + f.from_store +
                              "' has " + std::to_string(it->versions().size()) +
                              " concurrent versions: resolve them first (a read-only version "
                              "holds one value per key)");
      }
      add(it->key(), it->versions()[0].value);
    }
    src->close();
  } else {
    const std::string format = format_of(f);
    std::ifstream file;
    if (f.input != "-") {
      file.open(f.input, std::ios::binary);
      if (!file) throw IoError("cannot read " + f.input);
    }
    std::istream& in = f.input == "-" ? std::cin : file;
    source = f.input == "-" ? "stdin" : f.input;
    uint64_t line = 1;
    auto at = [&](uint64_t l, const std::string& what) {
      return InvalidArgument(source + ":" + std::to_string(l) + ": " + what);
    };
    if (format == "jsonl") {
      std::string text;
      for (; std::getline(in, text); ++line) {
        if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
        try {
          const Json j = Json::parse(text);
          const Json* k = j.find("key");
          const Json* v = j.find("value");
          if (!j.is_object() || k == nullptr || v == nullptr || j.as_object().size() != 2) {
            throw InvalidArgument("expected an object with exactly `key` and `value`");
          }
          add(ser.key->parse_text(text_of(*k, *ser.key)),
              ser.value->parse_text(text_of(*v, *ser.value)));
        } catch (const InvalidArgument& e) {
          throw at(line, e.what());
        } catch (const Corruption& e) {
          throw at(line, e.what());
        }
      }
    } else {
      std::vector<std::string> fields;
      for (uint64_t first = line; read_csv_record(in, &fields, &line); first = line) {
        if (f.header && first == 1) continue;
        if (fields.size() == 1 && fields[0].empty()) continue;  // a blank line
        if (fields.size() != 2) {
          throw at(first, "expected 2 columns (key,value), found " + std::to_string(fields.size()));
        }
        try {
          add(ser.key->parse_text(fields[0]), ser.value->parse_text(fields[1]));
        } catch (const InvalidArgument& e) {
          throw at(first, e.what());
        }
      }
    }
    if (in.bad()) throw IoError("cannot read " + source);
  }
  const ReadOnlyBuildResult r = builder->finish();
  progress.end();
  const double s = std::chrono::duration<double>(Clock::now() - start).count();
  char line[256];
  std::snprintf(line, sizeof line, "%.1f s, %.1f MB/s of input", s,
                s > 0 ? static_cast<double>(r.input_bytes) / 1e6 / s : 0.0);
  std::cout << "built " << f.out << " from " << source << ": " << with_commas(r.records)
            << " records in " << q << (q == 1 ? " partition" : " partitions") << "\n  "
            << mb(r.input_bytes) << " in, " << mb(r.output_bytes) << " written, " << r.runs
            << " sorted runs spilled to disk, " << line << "\n";
  return kOk;
}

// ---- admin -----------------------------------------------------------------

namespace {

struct Status {
  uint64_t live = 0;
  std::vector<ReadOnlyVersionInfo> versions;
};

// Where the admin commands act: a node, a server, or a local directory.
class Target {
 public:
  virtual ~Target() = default;
  virtual std::string name() const = 0;
  // The partitions whose chunks it takes (empty: every one).
  virtual std::vector<uint32_t> partitions(uint32_t) const { return {}; }
  virtual Status status() = 0;
  // Receives version `version`, its metadata `meta`: `send` is called with
  // a function taking each piece of each file.
  using Sink = std::function<void(const std::string& file, std::string_view bytes)>;
  virtual void fetch(uint64_t version, const std::string& meta,
                     const std::function<void(const Sink&)>& send) = 0;
  virtual void prepare(uint64_t version) = 0;
  virtual uint64_t commit(uint64_t version) = 0;
  virtual void abort() = 0;
  virtual void discard(uint64_t version) = 0;
};

class LocalTarget final : public Target {
 public:
  LocalTarget(std::unique_ptr<Store> store, const std::string& name) : store_(std::move(store)) {
    ro_ = find_layer<ReadOnlyStore>(*store_);
    if (ro_ == nullptr) {
      throw UsageError("store '" + name + "' is not a read-only store: its engine is not "
                       "`readonly`");
    }
  }
  ~LocalTarget() override { store_->close(); }
  std::string name() const override { return ro_->path(); }
  Status status() override { return {ro_->live_version(), ro_->status()}; }
  void fetch(uint64_t version, const std::string& meta,
             const std::function<void(const Sink&)>& send) override {
    internal::ReadOnlyReceiver in(ro_->path(), version, meta);
    send([&](const std::string& file, std::string_view bytes) { in.write(file, bytes); });
    in.finish();
  }
  void prepare(uint64_t version) override { ro_->prepare(version); }
  uint64_t commit(uint64_t version) override { return ro_->commit(version); }
  void abort() override { ro_->abort(); }
  void discard(uint64_t version) override { ro_->discard(version); }

 private:
  std::unique_ptr<Store> store_;
  ReadOnlyStore* ro_;
};

void check(const grpc::Status& st, const std::string& where) {
  if (!st.ok()) internal::throw_status(st, where);
}

class RemoteTarget final : public Target {
 public:
  RemoteTarget(std::string store, std::string address, std::string label,
               std::vector<uint32_t> partitions)
      : store_(std::move(store)),
        address_(std::move(address)),
        label_(std::move(label)),
        partitions_(std::move(partitions)),
        stub_(rpc::Admin::NewStub(channel_to(address_))) {}
  std::string name() const override { return label_; }
  std::vector<uint32_t> partitions(uint32_t) const override { return partitions_; }

  Status status() override {
    grpc::ClientContext ctx;
    authorize(&ctx);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    rpc::ReadOnlyStatusRequest req;
    req.set_store(store_);
    rpc::ReadOnlyStatusResponse resp;
    check(stub_->ReadOnlyStatus(&ctx, req, &resp), label_);
    Status s;
    s.live = resp.live();
    for (const rpc::ReadOnlyVersion& v : resp.versions()) {
      ReadOnlyVersionInfo info;
      info.version = v.version();
      info.records = v.records();
      info.bytes = v.bytes();
      info.ring_partitions = v.ring_partitions();
      info.partitions.assign(v.partitions().begin(), v.partitions().end());
      info.live = v.live();
      s.versions.push_back(std::move(info));
    }
    return s;
  }

  void fetch(uint64_t version, const std::string& meta,
             const std::function<void(const Sink&)>& send) override {
    grpc::ClientContext ctx;
    authorize(&ctx);
    rpc::ReadOnlyFetchResponse resp;
    auto writer = stub_->ReadOnlyFetch(&ctx, &resp);
    rpc::ReadOnlyFetchRequest first;
    first.set_store(store_);
    first.set_version(version);
    first.set_metadata(meta);
    bool open = writer->Write(first);
    rpc::ReadOnlyFetchRequest piece;
    send([&](const std::string& file, std::string_view bytes) {
      if (!open) return;  // the node refused: Finish says why
      piece.set_file(file);
      piece.set_data(bytes.data(), bytes.size());
      open = writer->Write(piece);
    });
    if (open) writer->WritesDone();
    check(writer->Finish(), label_);
  }

  void prepare(uint64_t version) override { step(rpc::ReadOnlySwapRequest::PREPARE, version); }
  uint64_t commit(uint64_t version) override {
    return step(rpc::ReadOnlySwapRequest::COMMIT, version);
  }
  void abort() override { step(rpc::ReadOnlySwapRequest::ABORT, 0); }
  void discard(uint64_t version) override { step(rpc::ReadOnlySwapRequest::DISCARD, version); }

 private:
  uint64_t step(rpc::ReadOnlySwapRequest::Step s, uint64_t version) {
    grpc::ClientContext ctx;
    authorize(&ctx);
    // A prepare reads every file of the version to check it.
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(30));
    rpc::ReadOnlySwapRequest req;
    req.set_store(store_);
    req.set_version(version);
    req.set_step(s);
    rpc::ReadOnlySwapResponse resp;
    check(stub_->ReadOnlySwap(&ctx, req, &resp), label_);
    return resp.previous();
  }

  std::string store_, address_, label_;
  std::vector<uint32_t> partitions_;
  std::unique_ptr<rpc::Admin::Stub> stub_;
};

std::vector<std::unique_ptr<Target>> targets(const Config& config, const std::string& store,
                                             const ReadOnlyAdminFlags& f) {
  std::vector<std::unique_ptr<Target>> out;
  if (!f.server.empty()) {
    std::stringstream list(f.server);
    for (std::string address; std::getline(list, address, ',');) {
      if (!address.empty()) out.push_back(std::make_unique<RemoteTarget>(store, address, address, std::vector<uint32_t>{}));
    }
    return out;
  }
  if (config.nodes().empty()) {
    out.push_back(std::make_unique<LocalTarget>(config.open(store), store));
    return out;
  }
  const Ring ring(config.cluster());
  const int n = config.replication(store).n;
  for (const NodeInfo& node : config.nodes()) {
    std::vector<uint32_t> held;
    for (uint32_t p = 0; p < ring.partitions(); ++p) {
      for (NodeId id : ring.preference_list(p, n)) {
        if (id == node.id) held.push_back(p);
      }
    }
    out.push_back(std::make_unique<RemoteTarget>(
        store, node.address, "node " + std::to_string(node.id) + " (" + node.address + ")",
        std::move(held)));
  }
  return out;
}

// Runs fn(i) for every target at once; returns the error of each (empty: ok).
std::vector<std::string> on_all(size_t n, const std::function<void(size_t)>& fn) {
  std::vector<std::string> errors(n);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      try {
        fn(i);
      } catch (const std::exception& e) {
        errors[i] = e.what();
        if (errors[i].empty()) errors[i] = "failed";
      }
    });
  }
  for (std::thread& t : threads) t.join();
  return errors;
}

// Swaps every target to `version`: all prepare, then all commit; a failed
// prepare aborts the rest, a failed commit sends the committed back.
int swap_all(std::vector<std::unique_ptr<Target>>& ts, uint64_t version, const char* verb) {
  std::cerr << verb << " to version " << version << ": preparing " << ts.size()
            << (ts.size() == 1 ? " target\n" : " targets\n");
  std::vector<std::string> failed = on_all(ts.size(), [&](size_t i) { ts[i]->prepare(version); });
  bool any = false;
  for (size_t i = 0; i < ts.size(); ++i) {
    if (!failed[i].empty()) {
      std::cerr << "  " << ts[i]->name() << ": cannot prepare: " << failed[i] << "\n";
      any = true;
    }
  }
  if (any) {
    on_all(ts.size(), [&](size_t i) { ts[i]->abort(); });
    std::cout << "not swapped: every target keeps the version it serves\n";
    return kFailed;
  }
  std::vector<uint64_t> before(ts.size(), 0);
  failed = on_all(ts.size(), [&](size_t i) { before[i] = ts[i]->commit(version); });
  std::vector<size_t> bad, good;
  for (size_t i = 0; i < ts.size(); ++i) (failed[i].empty() ? good : bad).push_back(i);
  if (bad.empty()) {
    for (size_t i = 0; i < ts.size(); ++i) {
      std::cout << ts[i]->name() << ": serving version " << version << " (was "
                << (before[i] == 0 ? std::string("none") : std::to_string(before[i])) << ")\n";
    }
    return kOk;
  }
  for (size_t i : bad) std::cerr << "  " << ts[i]->name() << ": cannot commit: " << failed[i] << "\n";
  for (size_t i : good) {
    if (before[i] == 0) {
      std::cerr << "  " << ts[i]->name() << ": served no version before; it keeps " << version << "\n";
      continue;
    }
    try {
      ts[i]->prepare(before[i]);
      ts[i]->commit(before[i]);
      std::cerr << "  " << ts[i]->name() << ": back to version " << before[i] << "\n";
    } catch (const std::exception& e) {
      std::cerr << "  " << ts[i]->name() << ": cannot go back to version " << before[i] << ": "
                << e.what() << "\n";
    }
  }
  std::cout << "not swapped: a commit failed; the targets that had committed were sent back\n";
  return kFailed;
}

int fetch_all(std::vector<std::unique_ptr<Target>>& ts, const Config& config,
              const std::string& store, const std::string& dir, const ReadOnlyAdminFlags& f) {
  const std::string meta_path = (fs::path(dir) / ro::kMetadataFile).string();
  std::ifstream in(meta_path, std::ios::binary);
  if (!in) throw UsageError(dir + " is not a built read-only version (no " + meta_path + ")");
  std::stringstream text;
  text << in.rdbuf();
  const ro::VersionMeta meta = ro::VersionMeta::parse(text.str(), meta_path);
  if (!config.nodes().empty() && f.server.empty()) {
    const uint32_t q = Ring(config.cluster()).partitions();
    if (meta.ring_partitions != q) {
      throw UsageError(dir + " was built for " + std::to_string(meta.ring_partitions) +
                       " partitions; the cluster has " + std::to_string(q) +
                       ": build it with this config");
    }
  }
  if (!meta.store.empty() && meta.store != store) {
    std::cerr << "note: " << dir << " was built for store '" << meta.store << "', fetched into '"
              << store << "'\n";
  }
  // The version number: given, or one past every version any target holds.
  uint64_t version = f.as_version;
  if (version == 0) {
    std::vector<Status> st(ts.size());
    const auto failed = on_all(ts.size(), [&](size_t i) { st[i] = ts[i]->status(); });
    for (size_t i = 0; i < ts.size(); ++i) {
      if (!failed[i].empty()) throw Unavailable(ts[i]->name() + ": " + failed[i]);
      for (const ReadOnlyVersionInfo& v : st[i].versions) version = std::max(version, v.version);
    }
    ++version;
  }
  std::vector<ro::VersionMeta> parts;
  uint64_t total = 0;
  for (const auto& t : ts) {
    const std::vector<uint32_t> held = t->partitions(meta.ring_partitions);
    parts.push_back(held.empty() ? meta : meta.subset(held));
    total += parts.back().bytes();
  }
  std::cerr << "fetching " << dir << " as version " << version << " into " << ts.size()
            << (ts.size() == 1 ? " target" : " targets") << ": " << mb(total) << "\n";
  std::vector<std::atomic<uint64_t>> sent(ts.size());
  std::atomic<bool> done{false};
  const auto start = Clock::now();
  std::thread shower([&] {
    ProgressLine line;
    while (!done.load()) {
      uint64_t s = 0;
      for (auto& x : sent) s += x.load();
      const double secs = std::chrono::duration<double>(Clock::now() - start).count();
      char rate[32];
      std::snprintf(rate, sizeof rate, "%.1f MB/s", secs > 0 ? static_cast<double>(s) / 1e6 / secs : 0.0);
      line.show("sent " + mb(s) + " of " + mb(total) + " (" + rate + ")");
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    line.end();
  });
  const auto failed = on_all(ts.size(), [&](size_t i) {
    const std::string text_i = parts[i].to_json();
    ts[i]->fetch(version, text_i, [&](const Target::Sink& sink) {
      std::string buf(1 << 20, '\0');
      const auto t0 = Clock::now();
      for (const ro::ChunkMeta& c : parts[i].chunks) {
        for (const ro::FileMeta* file : {&c.index, &c.data}) {
          const std::string path = (fs::path(dir) / file->file).string();
          std::ifstream src(path, std::ios::binary);
          if (!src) throw IoError("cannot read " + path);
          while (src) {
            src.read(buf.data(), static_cast<std::streamsize>(buf.size()));
            const auto got = static_cast<size_t>(src.gcount());
            if (got == 0) break;
            sink(file->file, std::string_view(buf.data(), got));
            const uint64_t s = sent[i] += got;
            if (f.max_rate > 0) {
              // Ahead of the rate: wait until the bytes sent are due.
              const auto due = t0 + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(static_cast<double>(s) /
                                                                      static_cast<double>(f.max_rate)));
              std::this_thread::sleep_until(due);
            }
          }
        }
      }
    });
  });
  done = true;
  shower.join();
  int status = kOk;
  for (size_t i = 0; i < ts.size(); ++i) {
    if (failed[i].empty()) {
      std::cout << ts[i]->name() << ": fetched version " << version << ", "
                << with_commas(parts[i].records) << " records in " << parts[i].chunks.size()
                << (parts[i].chunks.size() == 1 ? " partition, " : " partitions, ")
                << mb(parts[i].bytes()) << "\n";
    } else {
      std::cout << ts[i]->name() << ": fetch failed: " << failed[i] << "\n";
      status = kFailed;
    }
  }
  if (status == kOk) {
    std::cout << "version " << version << " is ready: cairn admin readonly swap " << version << "\n";
    return status;
  }
  // A version some targets lack cannot be swapped in: none keeps it.
  for (size_t i = 0; i < ts.size(); ++i) {
    if (!failed[i].empty()) continue;
    try {
      ts[i]->discard(version);
    } catch (const std::exception& e) {
      std::cout << ts[i]->name() << ": cannot discard version " << version << ": " << e.what()
                << "\n";
    }
  }
  std::cout << "not fetched: version " << version << " is kept by no target\n";
  return status;
}

}  // namespace

int readonly_admin(const Config& config, const std::string& store, const ReadOnlyAdminFlags& f) {
  const std::string sub = f.args.empty() ? "" : f.args[0];
  const size_t want = sub == "fetch" || sub == "swap" ? 2 : 1;
  if ((sub != "fetch" && sub != "swap" && sub != "rollback" && sub != "status") ||
      f.args.size() != want) {
    throw UsageError("expected: admin readonly fetch DIR | swap VERSION | rollback | status "
                     "(see cairn admin --help)");
  }
  std::vector<std::unique_ptr<Target>> ts = targets(config, store, f);
  if (sub == "fetch") return fetch_all(ts, config, store, f.args[1], f);
  if (sub == "swap") {
    return swap_all(ts, flag_number("swap VERSION", f.args[1], 1), "swapping");
  }
  std::vector<Status> st(ts.size());
  const auto failed = on_all(ts.size(), [&](size_t i) { st[i] = ts[i]->status(); });
  if (sub == "status") {
    int status = kOk;
    for (size_t i = 0; i < ts.size(); ++i) {
      if (!failed[i].empty()) {
        std::cout << ts[i]->name() << ": " << failed[i] << "\n";
        status = kFailed;
        continue;
      }
      std::cout << ts[i]->name() << ": serving "
                << (st[i].live == 0 ? std::string("no version") : "version " + std::to_string(st[i].live))
                << "\n";
      for (const ReadOnlyVersionInfo& v : st[i].versions) {
        std::cout << "  version " << v.version << (v.live ? " (live)" : "") << ": "
                  << with_commas(v.records) << " records, " << mb(v.bytes) << ", "
                  << v.partitions.size() << " of " << v.ring_partitions << " partitions\n";
      }
    }
    return status;
  }
  // rollback: every target serves the same version L; go to the newest
  // version below L that every one of them holds.
  uint64_t live = 0;
  std::set<uint64_t> common;
  for (size_t i = 0; i < ts.size(); ++i) {
    if (!failed[i].empty()) throw Unavailable(ts[i]->name() + ": " + failed[i]);
    if (i == 0) live = st[i].live;
    if (st[i].live != live) {
      throw FailedPrecondition(ts[i]->name() + " serves version " + std::to_string(st[i].live) +
                               ", " + ts[0]->name() + " version " + std::to_string(live) +
                               ": swap them to one version first");
    }
    std::set<uint64_t> mine;
    for (const ReadOnlyVersionInfo& v : st[i].versions) {
      if (v.version < live) mine.insert(v.version);
    }
    if (i == 0) {
      common = mine;
    } else {
      std::set<uint64_t> both;
      for (uint64_t v : mine) {
        if (common.contains(v)) both.insert(v);
      }
      common = both;
    }
  }
  if (live == 0 || common.empty()) {
    throw FailedPrecondition("nothing to roll back to: no version older than the live one (" +
                             std::to_string(live) + ") is on every target");
  }
  return swap_all(ts, *common.rbegin(), "rolling back");
}

}  // namespace cairn::tools
