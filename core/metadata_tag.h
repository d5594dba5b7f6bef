// Internal: the cluster metadata version a replica call is routed by.
//
// The routing layer sets it around each call it makes to a replica
// (MetadataTag), and the grpc engine sends it with the request
// (`metadata_version`), so that a node whose metadata is newer refuses
// the call (StaleMetadata) instead of taking a write routed by an old
// layout. Calls made outside a routing layer's (a node's hint pusher)
// carry the process's version, which cairn-server keeps current.

#ifndef CAIRN_CORE_METADATA_TAG_H_
#define CAIRN_CORE_METADATA_TAG_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace cairn::internal {

inline std::atomic<int64_t>& process_metadata_version() {
  static std::atomic<int64_t> v{0};
  return v;
}

inline int64_t*& metadata_tag_slot() {
  thread_local int64_t* tag = nullptr;
  return tag;
}

// Where this process's metadata lives, as a node names it to a caller it
// refuses (" (cluster metadata: etcd HOST:PORT,... prefix P)"), so that a
// client started from a file can follow it; empty without etcd. Set once,
// before the server starts.
inline std::string& process_metadata_source() {
  static std::string source;
  return source;
}

inline std::string metadata_source_note(const std::vector<std::string>& endpoints,
                                        const std::string& prefix) {
  std::string list;
  for (const std::string& e : endpoints) list += (list.empty() ? "" : ",") + e;
  return " (cluster metadata: etcd " + list + " prefix " + prefix + ")";
}

// The etcd endpoints and prefix a refusal's message names, if it names
// them (metadata_source_note()).
inline bool parse_metadata_source(const std::string& message, std::vector<std::string>* endpoints,
                                  std::string* prefix) {
  const std::string a = " (cluster metadata: etcd ", b = " prefix ";
  const size_t at = message.rfind(a);
  if (at == std::string::npos) return false;
  const size_t mid = message.find(b, at + a.size());
  const size_t end = message.rfind(')');
  if (mid == std::string::npos || end == std::string::npos || end < mid) return false;
  const std::string list = message.substr(at + a.size(), mid - at - a.size());
  *prefix = message.substr(mid + b.size(), end - mid - b.size());
  endpoints->clear();
  for (size_t start = 0; start <= list.size();) {
    size_t comma = list.find(',', start);
    if (comma == std::string::npos) comma = list.size();
    if (comma > start) endpoints->push_back(list.substr(start, comma - start));
    start = comma + 1;
  }
  return !endpoints->empty() && !prefix->empty();
}

// The version the current call is routed by.
inline int64_t metadata_tag() {
  const int64_t* tag = metadata_tag_slot();
  return tag != nullptr ? *tag : process_metadata_version().load(std::memory_order_relaxed);
}

// Sets the version for the calls this thread makes in its scope.
class MetadataTag {
 public:
  explicit MetadataTag(int64_t version) : version_(version), saved_(metadata_tag_slot()) {
    metadata_tag_slot() = &version_;
  }
  ~MetadataTag() { metadata_tag_slot() = saved_; }
  MetadataTag(const MetadataTag&) = delete;
  MetadataTag& operator=(const MetadataTag&) = delete;

 private:
  int64_t version_;
  int64_t* saved_;
};

}  // namespace cairn::internal

#endif  // CAIRN_CORE_METADATA_TAG_H_
