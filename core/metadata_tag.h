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

namespace cairn::internal {

inline std::atomic<int64_t>& process_metadata_version() {
  static std::atomic<int64_t> v{0};
  return v;
}

inline int64_t*& metadata_tag_slot() {
  thread_local int64_t* tag = nullptr;
  return tag;
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
