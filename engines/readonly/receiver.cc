#include "engines/readonly/receiver.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "cairn/errors.h"
#include "engines/log/crc32c.h"

namespace cairn::internal {

namespace fs = std::filesystem;
namespace ro = readonly;

struct ReadOnlyReceiver::Open {
  const ro::FileMeta* meta = nullptr;
  std::string path;
  int fd = -1;
  uint64_t size = 0;
  uint32_t crc = 0;
  ~Open() {
    if (fd >= 0) ::close(fd);
  }
};

ReadOnlyReceiver::ReadOnlyReceiver(std::string root, uint64_t version,
                                   std::string_view metadata_json)
    : root_(std::move(root)), version_(version) {
  if (version_ == 0) throw InvalidArgument("read-only versions are numbered from 1");
  meta_ = ro::VersionMeta::parse(metadata_json, "the metadata of version " +
                                                    std::to_string(version_));
  metadata_text_ = meta_.to_json();
  std::error_code ec;
  if (fs::exists(ro::version_dir(root_, version_), ec)) {
    throw FailedPrecondition(ro::version_dir(root_, version_) +
                             " exists already: fetch it as another version");
  }
  incoming_ = (fs::path(root_) / (".incoming-" + std::to_string(version_))).string();
  // One fetch into a store at a time: a second of the same version would
  // delete the first's files, or see its own renamed into place half
  // written. The lock file stays (unlinking it would let two fetches hold
  // locks on two files of the same name).
  fs::create_directories(root_, ec);
  const std::string lock_path = (fs::path(root_) / ".fetch.lock").string();
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) throw IoError("cannot open " + lock_path + ": " + std::strerror(errno));
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(lock_fd_);
    lock_fd_ = -1;
    if (err == EWOULDBLOCK) {
      throw Unavailable("another fetch into " + root_ +
                        " is in progress; one fetch at a time per store");
    }
    throw IoError("cannot lock " + lock_path + ": " + std::strerror(err));
  }
  fs::remove_all(incoming_, ec);  // what a fetch that died left
  fs::create_directories(incoming_, ec);
  if (ec) {
    release();
    throw IoError("cannot create " + incoming_ + ": " + ec.message());
  }
}

void ReadOnlyReceiver::release() {
  if (lock_fd_ < 0) return;
  ::close(lock_fd_);  // unlocks
  lock_fd_ = -1;
}

ReadOnlyReceiver::~ReadOnlyReceiver() {
  open_.reset();
  if (!finished_) {
    std::error_code ec;
    fs::remove_all(incoming_, ec);
  }
  release();
}

const ro::FileMeta& ReadOnlyReceiver::expected(size_t i) const {
  const ro::ChunkMeta& c = meta_.chunks[i / 2];
  return i % 2 == 0 ? c.index : c.data;
}

void ReadOnlyReceiver::close_current() {
  if (open_ == nullptr) return;
  const ro::FileMeta& m = *open_->meta;
  if (open_->size != m.bytes) {
    throw Corruption("fetch of version " + std::to_string(version_) + ": " + m.file + " has " +
                     std::to_string(open_->size) + " bytes, not the " + std::to_string(m.bytes) +
                     " its metadata says; nothing kept");
  }
  if (open_->crc != m.crc32c) {
    throw Corruption("fetch of version " + std::to_string(version_) + ": " + m.file +
                     " does not match its checksum (the copy is damaged); nothing kept");
  }
  if (::fsync(open_->fd) != 0) throw IoError("cannot sync " + open_->path + ": " + std::strerror(errno));
  open_.reset();
}

void ReadOnlyReceiver::write(std::string_view file, std::string_view bytes) {
  if (finished_) throw FailedPrecondition("the fetch is finished");
  if (open_ == nullptr || open_->meta->file != file) {
    close_current();
    if (next_file_ == meta_.chunks.size() * 2) {
      throw InvalidArgument("fetch of version " + std::to_string(version_) + ": file '" +
                            std::string(file) + "' is not in its metadata (or came twice)");
    }
    const ro::FileMeta& m = expected(next_file_);
    if (m.file != file) {
      throw InvalidArgument("fetch of version " + std::to_string(version_) + ": expected file '" +
                            m.file + "', got '" + std::string(file) + "'");
    }
    ++next_file_;
    open_ = std::make_unique<Open>();
    open_->meta = &m;
    open_->path = (fs::path(incoming_) / m.file).string();
    open_->fd = ::open(open_->path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (open_->fd < 0) throw IoError("cannot create " + open_->path + ": " + std::strerror(errno));
  }
  if (open_->size + bytes.size() > open_->meta->bytes) {
    throw InvalidArgument("fetch of version " + std::to_string(version_) + ": " +
                          std::string(file) + " is longer than the " +
                          std::to_string(open_->meta->bytes) + " bytes its metadata says");
  }
  for (size_t done = 0; done < bytes.size();) {
    const ssize_t n = ::write(open_->fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw IoError("cannot write " + open_->path + ": " + std::strerror(errno));
    }
    done += static_cast<size_t>(n);
  }
  open_->crc = crc32c(bytes, open_->crc);
  open_->size += bytes.size();
  received_ += bytes.size();
}

void ReadOnlyReceiver::finish() {
  if (finished_) return;
  close_current();
  // Files that never came (empty ones included: every file has a header).
  if (next_file_ != meta_.chunks.size() * 2) {
    throw Corruption("fetch of version " + std::to_string(version_) + ": file '" +
                     expected(next_file_).file + "' never arrived; nothing kept");
  }
  const std::string meta_path = (fs::path(incoming_) / ro::kMetadataFile).string();
  {
    const int fd = ::open(meta_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw IoError("cannot create " + meta_path + ": " + std::strerror(errno));
    const bool ok = ::write(fd, metadata_text_.data(), metadata_text_.size()) ==
                        static_cast<ssize_t>(metadata_text_.size()) &&
                    ::fsync(fd) == 0;
    const int err = errno;
    ::close(fd);
    if (!ok) throw IoError("cannot write " + meta_path + ": " + std::strerror(err));
  }
  ro::sync_path(incoming_);
  std::error_code ec;
  fs::rename(incoming_, ro::version_dir(root_, version_), ec);
  if (ec) {
    throw IoError("cannot rename " + incoming_ + " to " + ro::version_dir(root_, version_) +
                  ": " + ec.message());
  }
  ro::sync_path(root_);
  finished_ = true;
}

}  // namespace cairn::internal
