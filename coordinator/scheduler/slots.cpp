#include "coordinator/scheduler/slots.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <regex>
#include <sstream>
#include <thread>

namespace isoflop {
namespace {

std::string Trim(std::string_view text) {
  const size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string_view::npos) return "";
  const size_t end = text.find_last_not_of(" \t\r\n");
  return std::string(text.substr(begin, end - begin + 1));
}

// The GPU an entry of CUDA_VISIBLE_DEVICES names, or nullptr: a decimal index, or a UUID prefix
// that matches exactly one GPU ("GPU-5c1a" or the whole UUID).
const GpuInfo* Match(const std::vector<GpuInfo>& gpus, const std::string& entry) {
  if (entry.empty()) return nullptr;
  if (entry.find_first_not_of("0123456789") == std::string::npos) {
    const int index = std::atoi(entry.c_str());
    for (const GpuInfo& gpu : gpus) {
      if (gpu.index == index) return &gpu;
    }
    return nullptr;
  }
  const GpuInfo* found = nullptr;
  for (const GpuInfo& gpu : gpus) {
    if (!gpu.uuid.empty() && gpu.uuid.rfind(entry, 0) == 0) {
      if (found != nullptr) return nullptr;  // ambiguous
      found = &gpu;
    }
  }
  return found;
}

std::string RunAndCapture(const std::string& command) {
  std::string output;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return output;
  char buffer[4096];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, n);
  ::pclose(pipe);
  return output;
}

}  // namespace

std::vector<GpuInfo> ParseNvidiaSmiList(std::string_view text) {
  static const std::regex kLine(R"(^GPU (\d+): (.*?)(?: \(UUID: ([^)]+)\))?$)");
  std::vector<GpuInfo> gpus;
  std::istringstream lines{std::string(text)};
  std::string line;
  while (std::getline(lines, line)) {
    line = Trim(line);
    std::smatch match;
    if (!std::regex_match(line, match, kLine)) continue;
    GpuInfo gpu;
    gpu.index = std::atoi(match[1].str().c_str());
    gpu.name = match[2].str();
    gpu.uuid = match[3].str();
    gpus.push_back(std::move(gpu));
  }
  return gpus;
}

std::vector<GpuInfo> VisibleGpus(const std::vector<GpuInfo>& gpus,
                                 const char* cuda_visible_devices) {
  if (cuda_visible_devices == nullptr) return gpus;
  std::vector<GpuInfo> visible;
  std::istringstream entries(cuda_visible_devices);
  std::string entry;
  while (std::getline(entries, entry, ',')) {
    const GpuInfo* gpu = Match(gpus, Trim(entry));
    if (gpu == nullptr) break;  // CUDA ignores everything from the first invalid entry on
    bool duplicate = false;
    for (const GpuInfo& seen : visible) duplicate = duplicate || seen.index == gpu->index;
    if (!duplicate) visible.push_back(*gpu);
  }
  return visible;
}

std::vector<Slot> CpuSlots(int count) {
  std::vector<Slot> slots;
  for (int i = 0; i < std::max(count, 1); ++i) {
    const std::string name = fmt::format("cpu{}", i);
    slots.push_back({name, name, false});
  }
  return slots;
}

std::vector<Slot> DetectSlots(const SlotOptions& options) {
  if (options.cpu_slots > 0) return CpuSlots(options.cpu_slots);
  const std::vector<GpuInfo> gpus =
      VisibleGpus(ParseNvidiaSmiList(RunAndCapture(options.nvidia_smi + " -L 2>/dev/null")),
                  std::getenv("CUDA_VISIBLE_DEVICES"));
  if (gpus.empty()) return CpuSlots(static_cast<int>(std::thread::hardware_concurrency()));
  std::vector<Slot> slots;
  for (const GpuInfo& gpu : gpus) {
    slots.push_back({gpu.uuid.empty() ? std::to_string(gpu.index) : gpu.uuid,
                     fmt::format("{} ({})", gpu.index, gpu.name), true});
  }
  return slots;
}

}  // namespace isoflop
