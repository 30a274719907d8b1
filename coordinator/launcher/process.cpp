#include "coordinator/launcher/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

extern char** environ;

namespace isoflop {
namespace {

std::string Errno(int error) {
  return std::strerror(error);
}

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

std::string BootId() {
  static const std::string boot_id = [] {
    std::string id = ReadSmallFile("/proc/sys/kernel/random/boot_id");
    while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
    return id;
  }();
  return boot_id;
}

struct ProcStat {
  char state = '?';
  pid_t ppid = 0;
  uint64_t start_ticks = 0;
};

// /proc/<pid>/stat: "pid (comm) state ppid ...". comm may hold spaces and parentheses, so fields
// are counted from the last ')'.
std::optional<ProcStat> ReadProcStat(pid_t pid) {
  const std::string text = ReadSmallFile(fmt::format("/proc/{}/stat", pid));
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(text.substr(close + 1));
  ProcStat stat;
  std::string skip;
  fields >> stat.state >> stat.ppid;
  // Fields 5..21 are not needed; field 22 is starttime.
  for (int field = 5; field <= 21; ++field) fields >> skip;
  fields >> stat.start_ticks;
  if (!fields) return std::nullopt;
  return stat;
}

std::vector<pid_t> AllPids() {
  std::vector<pid_t> pids;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return pids;
  while (dirent* entry = readdir(proc)) {
    char* end = nullptr;
    const long pid = std::strtol(entry->d_name, &end, 10);
    if (end != entry->d_name && *end == '\0' && pid > 0) pids.push_back(static_cast<pid_t>(pid));
  }
  closedir(proc);
  return pids;
}

// Every process below `root`, from one snapshot of /proc.
std::vector<pid_t> Descendants(pid_t root) {
  std::multimap<pid_t, pid_t> children;
  for (pid_t pid : AllPids()) {
    if (std::optional<ProcStat> stat = ReadProcStat(pid)) children.emplace(stat->ppid, pid);
  }
  std::vector<pid_t> found;
  std::vector<pid_t> frontier = {root};
  while (!frontier.empty()) {
    const pid_t parent = frontier.back();
    frontier.pop_back();
    auto [begin, end] = children.equal_range(parent);
    for (auto it = begin; it != end; ++it) {
      found.push_back(it->second);
      frontier.push_back(it->second);
    }
  }
  return found;
}

// posix_spawn's attributes and file actions, destroyed on every path.
class SpawnSetup {
 public:
  SpawnSetup() {
    posix_spawnattr_init(&attributes_);
    posix_spawn_file_actions_init(&actions_);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions_);
    posix_spawnattr_destroy(&attributes_);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
  posix_spawnattr_t* attributes() { return &attributes_; }
  posix_spawn_file_actions_t* actions() { return &actions_; }

 private:
  posix_spawnattr_t attributes_;
  posix_spawn_file_actions_t actions_;
};

}  // namespace

nlohmann::json ProcessIdentity::ToJson() const {
  return {{"pid", pid}, {"start_ticks", start_ticks}, {"boot_id", boot_id}};
}

Result<ProcessIdentity> ProcessIdentity::FromJson(const nlohmann::json& json) {
  if (!json.is_object() || !json.value("pid", nlohmann::json()).is_number_integer() ||
      !json.value("start_ticks", nlohmann::json()).is_number_unsigned() ||
      !json.value("boot_id", nlohmann::json()).is_string()) {
    return Status::Corruption(fmt::format("not a process handle: {}", json.dump()));
  }
  ProcessIdentity identity;
  identity.pid = json["pid"].get<pid_t>();
  identity.start_ticks = json["start_ticks"].get<uint64_t>();
  identity.boot_id = json["boot_id"].get<std::string>();
  return identity;
}

Result<ProcessIdentity> IdentifyProcess(pid_t pid) {
  std::optional<ProcStat> stat = ReadProcStat(pid);
  if (!stat) return Status::NotFound(fmt::format("there is no process {}", pid));
  return ProcessIdentity{pid, stat->start_ticks, BootId()};
}

bool IsRunning(const ProcessIdentity& identity) {
  if (identity.boot_id != BootId()) return false;
  std::optional<ProcStat> stat = ReadProcStat(identity.pid);
  // 'Z' has exited and waits to be reaped; 'X' is being torn down.
  return stat && stat->start_ticks == identity.start_ticks && stat->state != 'Z' &&
         stat->state != 'X';
}

Result<pid_t> SpawnProcessGroup(const SpawnOptions& options) {
  if (options.argv.empty()) return Status::InvalidArgument("nothing to spawn: empty argv");
  SpawnSetup setup;
  // A process group of its own: signals for the coordinator's group (a Ctrl-C in its terminal) do
  // not reach the worker, and the worker's group can be signalled as a whole.
  short flags = POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  posix_spawnattr_setpgroup(setup.attributes(), 0);
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigmask(setup.attributes(), &empty);
  // The coordinator ignores SIGPIPE and handles SIGCHLD, SIGTERM and SIGINT; an ignored signal
  // stays ignored across exec, so every disposition is reset for the worker.
  sigset_t defaults;
  sigfillset(&defaults);
  sigdelset(&defaults, SIGKILL);
  sigdelset(&defaults, SIGSTOP);
  posix_spawnattr_setsigdefault(setup.attributes(), &defaults);
  posix_spawnattr_setflags(setup.attributes(), flags);

  posix_spawn_file_actions_addopen(setup.actions(), STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(setup.actions(), STDOUT_FILENO, options.log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(setup.actions(), STDOUT_FILENO, STDERR_FILENO);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  // The lock file, the sockets and the database stay with the coordinator: a worker holding the
  // state directory's lock would keep the next coordinator from starting.
  posix_spawn_file_actions_addclosefrom_np(setup.actions(), STDERR_FILENO + 1);
#endif
  if (!options.working_dir.empty()) {
    posix_spawn_file_actions_addchdir_np(setup.actions(), options.working_dir.c_str());
  }

  std::map<std::string, std::string> environment;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    const size_t equals = text.find('=');
    if (equals == std::string_view::npos) continue;
    environment[std::string(text.substr(0, equals))] = std::string(text.substr(equals + 1));
  }
  for (const auto& [key, value] : options.env) environment[key] = value;
  std::vector<std::string> env_strings;
  env_strings.reserve(environment.size());
  for (const auto& [key, value] : environment) env_strings.push_back(key + "=" + value);
  std::vector<char*> envp;
  for (std::string& entry : env_strings) envp.push_back(entry.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_strings = options.argv;
  std::vector<char*> argv;
  for (std::string& arg : argv_strings) argv.push_back(arg.data());
  argv.push_back(nullptr);

  pid_t pid = 0;
  // glibc's posix_spawn reports a failed exec (and failed file actions) as its return value.
  const int rc =
      posix_spawn(&pid, argv[0], setup.actions(), setup.attributes(), argv.data(), envp.data());
  if (rc != 0) {
    return Status::IOError(
        fmt::format("cannot start {} (log {}): {}", options.argv[0], options.log_path, Errno(rc)));
  }
  return pid;
}

Status SignalProcessTree(pid_t pid, int signal) {
  if (pid <= 1) return Status::InvalidArgument(fmt::format("refusing to signal pid {}", pid));
  // Snapshot first: once signalled, children may be reparented and no longer look like ours.
  const std::vector<pid_t> descendants = Descendants(pid);
  int first_error = 0;
  if (::kill(-pid, signal) != 0 && errno != ESRCH) first_error = errno;
  if (::kill(pid, signal) != 0 && errno != ESRCH && first_error == 0) first_error = errno;
  for (pid_t child : descendants) {
    if (::kill(child, signal) != 0 && errno != ESRCH && first_error == 0) first_error = errno;
  }
  if (first_error != 0) {
    return Status::IOError(
        fmt::format("cannot send signal {} to process {}: {}", signal, pid, Errno(first_error)));
  }
  return Status::OK();
}

std::optional<pid_t> FindProcessWithEnvironment(const std::string& entry) {
  std::map<pid_t, pid_t> carriers;  // pid -> parent pid, of every running process with `entry`
  for (pid_t pid : AllPids()) {
    const std::string environment = ReadSmallFile(fmt::format("/proc/{}/environ", pid));
    size_t start = 0;
    while (start < environment.size()) {
      size_t end = environment.find('\0', start);
      if (end == std::string::npos) end = environment.size();
      if (environment.compare(start, end - start, entry) == 0) {
        std::optional<ProcStat> stat = ReadProcStat(pid);
        if (stat && stat->state != 'Z' && stat->state != 'X') carriers[pid] = stat->ppid;
        break;
      }
      start = end + 1;
    }
  }
  // The launched process passed the variable on to everything it started (mpirun to its ranks):
  // the one to return is the carrier whose parent is not one.
  for (const auto& [pid, parent] : carriers) {
    if (carriers.count(parent) == 0) return pid;
  }
  return std::nullopt;
}

Result<int> OpenPidfd(const ProcessIdentity& identity) {
#ifdef SYS_pidfd_open
  const long fd = ::syscall(SYS_pidfd_open, identity.pid, 0);
  if (fd < 0) {
    if (errno == ESRCH) return Status::NotFound(fmt::format("process {} is gone", identity.pid));
    if (errno == ENOSYS) return Status::FailedPrecondition("the kernel has no pidfd_open");
    return Status::IOError(fmt::format("pidfd_open({}): {}", identity.pid, Errno(errno)));
  }
  // A pidfd is close-on-exec from birth. It names whatever process had the pid at the call: check
  // that it is still ours.
  if (!IsRunning(identity)) {
    ::close(static_cast<int>(fd));
    return Status::NotFound(fmt::format("process {} is gone", identity.pid));
  }
  return static_cast<int>(fd);
#else
  (void)identity;
  return Status::FailedPrecondition("this system has no pidfd_open");
#endif
}

std::string HostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) return "localhost";
  return name;
}

}  // namespace isoflop
