#include "common/sweep/located_yaml.h"

#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <map>
#include <sstream>
#include <unordered_map>
#include <utility>

namespace isoflop::sweep {

namespace {

// Sweep files nest a handful of levels; anything deeper is an accident or an attack, and every
// later stage recurses over the tree.
constexpr size_t kMaxDepth = 64;
// Aliases copy their anchor's subtree, so a small file can describe an exponential tree ("billion
// laughs"); no real sweep comes near this many nodes.
constexpr size_t kMaxNodes = 1'000'000;

// The offset of the first byte that is not part of well-formed UTF-8 (RFC 3629: no overlong forms,
// no surrogates, nothing above U+10FFFF), or npos. Sweep files are text that ends up in run.json
// and the results database, both of which need valid UTF-8.
size_t FirstInvalidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = byte(i);
    size_t length = 0;
    unsigned char low = 0x80, high = 0xBF;  // allowed range of the second byte
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      length = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      length = 3;
      if (c == 0xE0) low = 0xA0;
      if (c == 0xED) high = 0x9F;  // U+D800..U+DFFF are surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      length = 4;
      if (c == 0xF0) low = 0x90;
      if (c == 0xF4) high = 0x8F;
    } else {
      return i;
    }
    if (i + length > s.size() || byte(i + 1) < low || byte(i + 1) > high) return i;
    for (size_t k = 2; k < length; ++k) {
      if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return i;
    }
    i += length;
  }
  return std::string_view::npos;
}

// 0-based line and column of a byte offset.
std::pair<int, int> LineAndColumn(std::string_view text, size_t offset) {
  int line = 0;
  size_t line_start = 0;
  for (size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  return {line, static_cast<int>(offset - line_start)};
}

// Stops the event stream from inside a handler with an error already located.
struct StopParsing {
  int line;  // 0-based, as yaml-cpp marks are
  int column;
  std::string message;
};

Location At(const std::shared_ptr<const SourceFile>& file, int line0, int column0) {
  return Location{file, std::max(line0, 0) + 1, std::max(column0, 0) + 1};
}

// Turns the yaml-cpp event stream into a YamlNode tree. Each open collection is a frame; a finished
// node is attached to the innermost frame, as a list item or as a map key / value in turn.
class TreeBuilder : public YAML::EventHandler {
 public:
  explicit TreeBuilder(std::shared_ptr<const SourceFile> file) : file_(std::move(file)) {}

  std::optional<YamlNode>& root() { return root_; }

  // Where an unclosed flow collection ('[' or '{') began: yaml-cpp reports such errors at the end
  // of the file, far from the bracket the user has to fix.
  const YamlNode* InnermostOpenFlow() const {
    for (auto it = frames_.rbegin(); it != frames_.rend(); ++it) {
      if (it->flow) return &it->node;
    }
    return nullptr;
  }

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents_ > 1) {
      throw StopParsing{mark.line, mark.column,
                        "a sweep file holds one YAML document; remove the '---' separator"};
    }
  }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    YamlNode node;
    node.location = At(file_, mark.line, mark.column);
    Finish(std::move(node), anchor);
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchors_.find(anchor);
    if (it == anchors_.end()) {
      throw StopParsing{mark.line, mark.column, "alias of an anchor that is not complete yet"};
    }
    CountNodes(it->second.count);
    Finish(it->second.node, 0);
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    CheckTag(mark, tag);
    YamlNode node = YamlNode::Scalar(value, At(file_, mark.line, mark.column), tag == "!");
    Finish(std::move(node), anchor);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value style) override {
    Open(mark, tag, anchor, style, YamlNode::Kind::kList);
  }
  void OnSequenceEnd() override { Close(); }

  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value style) override {
    Open(mark, tag, anchor, style, YamlNode::Kind::kMap);
  }
  void OnMapEnd() override { Close(); }

 private:
  struct Frame {
    YamlNode node;
    YAML::anchor_t anchor = 0;
    bool flow = false;
    size_t first_node = 0;  // nodes_ when the frame opened: the subtree's size for anchors
    std::optional<YamlNode> pending_key;
  };
  struct Anchored {
    YamlNode node;
    size_t count;
  };

  void CheckTag(const YAML::Mark& mark, const std::string& tag) {
    // "?" marks a plain scalar and "!" a quoted one; anything else is an explicit tag, which would
    // make the same text mean different things in different files.
    if (tag != "?" && tag != "!" && !tag.empty()) {
      constexpr std::string_view kCore = "tag:yaml.org,2002:";
      const std::string shown =
          tag.compare(0, kCore.size(), kCore) == 0 ? "!!" + tag.substr(kCore.size()) : tag;
      throw StopParsing{
          mark.line, mark.column,
          fmt::format("YAML tags ({}) are not supported; write the plain value", shown)};
    }
  }

  void CountNodes(size_t n) {
    nodes_ += n;
    if (nodes_ > kMaxNodes) {
      throw StopParsing{
          0, 0, fmt::format("the document expands to more than {} nodes (aliases?)", kMaxNodes)};
    }
  }

  void Open(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
            YAML::EmitterStyle::value style, YamlNode::Kind kind) {
    CheckTag(mark, tag);
    if (frames_.size() >= kMaxDepth) {
      throw StopParsing{mark.line, mark.column,
                        fmt::format("nesting deeper than {} levels", kMaxDepth)};
    }
    Frame frame;
    frame.node.kind = kind;
    frame.node.location = At(file_, mark.line, mark.column);
    frame.anchor = anchor;
    frame.flow = style == YAML::EmitterStyle::Flow;
    frame.first_node = nodes_;
    frames_.push_back(std::move(frame));
  }

  void Close() {
    Frame frame = std::move(frames_.back());
    frames_.pop_back();
    if (frame.anchor != 0) {
      anchors_[frame.anchor] = Anchored{frame.node, nodes_ - frame.first_node + 1};
    }
    Attach(std::move(frame.node));
  }

  void Finish(YamlNode node, YAML::anchor_t anchor) {
    CountNodes(1);
    if (anchor != 0) anchors_[anchor] = Anchored{node, 1};
    Attach(std::move(node));
  }

  void Attach(YamlNode node) {
    if (frames_.empty()) {
      root_ = std::move(node);
      return;
    }
    Frame& top = frames_.back();
    if (top.node.is_list()) {
      top.node.items.push_back(std::move(node));
    } else if (!top.pending_key) {
      top.pending_key = std::move(node);
    } else {
      // `key:` with nothing after it: yaml-cpp marks the null at the next token, often on a later
      // line; the key is where the user looks.
      if (node.is_null() && node.location.line != top.pending_key->location.line) {
        node.location = top.pending_key->location;
      }
      top.node.entries.push_back(YamlNode::Entry{std::move(*top.pending_key), std::move(node)});
      top.pending_key.reset();
    }
  }

  std::shared_ptr<const SourceFile> file_;
  std::vector<Frame> frames_;
  std::unordered_map<YAML::anchor_t, Anchored> anchors_;
  std::optional<YamlNode> root_;
  size_t nodes_ = 0;
  int documents_ = 0;
};

// yaml-cpp's messages name the parser's state; say what the user most likely has to change.
std::string ExplainSyntaxError(const std::string& message) {
  static const std::map<std::string, std::string> kExplained = {
      {"illegal map value",
       "unexpected ':' (check the indentation, or quote a value that contains \": \")"},
      {"end of map not found", "bad indentation: this line does not line up with its map"},
      {"end of sequence not found", "bad indentation: this line does not line up with its list"},
      {"illegal tab when looking for indentation",
       "tab character in the indentation (YAML indents with spaces only)"},
  };
  auto it = kExplained.find(message);
  if (it != kExplained.end()) return it->second;
  if (message.rfind(YAML::ErrorMsg::INVALID_UNICODE, 0) == 0) {
    // "invalid unicode: 55296" is a \\u or \\U escape of a surrogate or beyond U+10FFFF.
    const std::string code =
        message.substr(std::string_view(YAML::ErrorMsg::INVALID_UNICODE).size());
    char* end = nullptr;
    const unsigned long value = std::strtoul(code.c_str(), &end, 10);
    if (end != code.c_str() && *end == '\0') {
      return fmt::format("the escape for U+{:04X} names no Unicode character", value);
    }
  }
  return message;
}

// The column of a tab in the line's leading whitespace, or -1.
int LeadingTab(std::string_view text, int line0) {
  size_t begin = 0;
  for (int i = 0; i < line0; ++i) {
    begin = text.find('\n', begin);
    if (begin == std::string_view::npos) return -1;
    ++begin;
  }
  for (size_t i = begin; i < text.size() && (text[i] == ' ' || text[i] == '\t'); ++i) {
    if (text[i] == '\t') return static_cast<int>(i - begin);
  }
  return -1;
}

void CheckKeys(const YamlNode& node, const std::string& path, Diagnostics* diagnostics) {
  if (node.is_list()) {
    for (size_t i = 0; i < node.items.size(); ++i) {
      CheckKeys(node.items[i], IndexPath(path, i), diagnostics);
    }
    return;
  }
  if (!node.is_map()) return;
  std::unordered_map<std::string_view, const YamlNode*> first_seen;
  for (const YamlNode::Entry& entry : node.entries) {
    if (!entry.key.is_scalar()) {
      diagnostics->Add(entry.key.location, path,
                       fmt::format("map keys must be names, got {}", Describe(entry.key)));
      continue;
    }
    const std::string child = JoinPath(path, entry.key.text);
    auto [it, inserted] = first_seen.emplace(entry.key.text, &entry.key);
    if (!inserted) {
      diagnostics->Add(
          entry.key.location, child,
          fmt::format("duplicate key (first defined at line {})", it->second->location.line));
    }
    CheckKeys(entry.value, child, diagnostics);
  }
}

bool IsDigit(char c) {
  return c >= '0' && c <= '9';
}

// [-+]? (digits [. digits?] | . digits) ([eE] [-+]? digits)?
bool LooksLikeDecimal(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  size_t mantissa_digits = 0;
  while (i < s.size() && IsDigit(s[i])) ++i, ++mantissa_digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && IsDigit(s[i])) ++i, ++mantissa_digits;
  }
  if (mantissa_digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    size_t exponent_digits = 0;
    while (i < s.size() && IsDigit(s[i])) ++i, ++exponent_digits;
    if (exponent_digits == 0) return false;
  }
  return i == s.size();
}

std::string_view WithoutPlus(std::string_view s) {
  return !s.empty() && s[0] == '+' ? s.substr(1) : s;
}

}  // namespace

YamlNode YamlNode::Scalar(std::string text, Location location, bool quoted) {
  YamlNode node;
  node.kind = Kind::kScalar;
  node.text = std::move(text);
  node.location = std::move(location);
  node.quoted = quoted;
  return node;
}

const YamlNode* YamlNode::Find(std::string_view key) const {
  const YamlNode* found = nullptr;
  for (const Entry& entry : entries) {
    if (entry.key.is_scalar() && entry.key.text == key) found = &entry.value;
  }
  return found;
}

std::optional<YamlNode> ParseYaml(std::string_view text, std::shared_ptr<const SourceFile> file,
                                  Diagnostics* diagnostics) {
  if (const size_t bad = FirstInvalidUtf8(text); bad != std::string_view::npos) {
    const auto [line, column] = LineAndColumn(text, bad);
    diagnostics->Add(At(file, line, column), "",
                     fmt::format("not valid UTF-8 text (byte 0x{:02X}); save the file as UTF-8",
                                 static_cast<unsigned char>(text[bad])));
    return std::nullopt;
  }
  std::istringstream in{std::string(text)};
  TreeBuilder builder(file);
  try {
    YAML::Parser parser(in);
    while (parser.HandleNextDocument(builder)) {
    }
  } catch (const StopParsing& stop) {
    diagnostics->Add(At(file, stop.line, stop.column), "", stop.message);
    return std::nullopt;
  } catch (const YAML::Exception& e) {
    std::string message = ExplainSyntaxError(e.msg);
    Location location = At(file, e.mark.line, e.mark.column);
    const bool unclosed_flow =
        e.msg == YAML::ErrorMsg::END_OF_SEQ_FLOW || e.msg == YAML::ErrorMsg::END_OF_MAP_FLOW;
    if (const YamlNode* open = builder.InnermostOpenFlow(); unclosed_flow && open != nullptr) {
      message =
          fmt::format("'{}' is never closed (expected '{}' before {})", open->is_list() ? '[' : '{',
                      open->is_list() ? ']' : '}',
                      location.line > open->location.line ? fmt::format("line {}", location.line)
                                                          : std::string("the end of the line"));
      location = open->location;
    } else if (const int tab = LeadingTab(text, e.mark.line); tab >= 0) {
      message = ExplainSyntaxError(YAML::ErrorMsg::TAB_IN_INDENTATION);
      location = At(file, e.mark.line, tab);
    }
    diagnostics->Add(location, "", "invalid YAML: " + message);
    return std::nullopt;
  } catch (const std::exception& e) {
    diagnostics->Add(At(file, 0, 0), "", fmt::format("invalid YAML: {}", e.what()));
    return std::nullopt;
  }
  YamlNode root;
  if (builder.root()) {
    root = std::move(*builder.root());
  } else {
    root.location = At(file, 0, 0);
  }
  const int before = diagnostics->size();
  CheckKeys(root, "", diagnostics);
  if (diagnostics->size() != before) return std::nullopt;
  return root;
}

std::optional<double> AsNumber(const YamlNode& node) {
  if (!node.is_scalar() || !LooksLikeDecimal(node.text)) return std::nullopt;
  const std::string_view s = WithoutPlus(node.text);
  double value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(value)) {
    return std::nullopt;
  }
  return value;
}

std::optional<int64_t> AsInteger(const YamlNode& node) {
  if (!node.is_scalar()) return std::nullopt;
  // Exact for every int64 written as plain digits; through double (so 1e6 counts) otherwise.
  const std::string_view s = WithoutPlus(node.text);
  int64_t exact = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), exact);
  if (ec == std::errc() && end == s.data() + s.size()) return exact;
  const std::optional<double> value = AsNumber(node);
  if (!value || std::trunc(*value) != *value || std::fabs(*value) >= 9.2e18) return std::nullopt;
  return static_cast<int64_t>(*value);
}

std::optional<bool> AsBool(const YamlNode& node) {
  if (!node.is_scalar()) return std::nullopt;
  const std::string& t = node.text;
  if (t == "true" || t == "True" || t == "TRUE") return true;
  if (t == "false" || t == "False" || t == "FALSE") return false;
  return std::nullopt;
}

std::string Describe(const YamlNode& node) {
  switch (node.kind) {
    case YamlNode::Kind::kNull:
      return "nothing";
    case YamlNode::Kind::kList:
      if (node.items.empty()) return "an empty list";
      return fmt::format("a list of {} value{}", node.items.size(),
                         node.items.size() == 1 ? "" : "s");
    case YamlNode::Kind::kMap:
      return node.entries.empty() ? "an empty map" : "a map";
    case YamlNode::Kind::kScalar:
      break;
  }
  if (AsNumber(node) || AsBool(node)) return node.text;
  constexpr size_t kShown = 60;
  std::string shown = node.text.size() > kShown ? node.text.substr(0, kShown) + "..." : node.text;
  return fmt::format("\"{}\"", shown);
}

std::string JoinPath(std::string_view parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  return fmt::format("{}.{}", parent, key);
}

std::string IndexPath(std::string_view parent, size_t index) {
  return fmt::format("{}[{}]", parent, index);
}

std::vector<std::string> SplitPath(std::string_view path) {
  std::vector<std::string> keys;
  size_t begin = 0;
  while (true) {
    const size_t dot = path.find('.', begin);
    keys.emplace_back(path.substr(begin, dot - begin));
    if (dot == std::string_view::npos) break;
    begin = dot + 1;
  }
  return keys;
}

YamlNode MergeYaml(YamlNode base, const YamlNode& overlay) {
  if (!base.is_map() || !overlay.is_map()) return overlay;
  for (const YamlNode::Entry& entry : overlay.entries) {
    auto same_key = [&](const YamlNode::Entry& e) {
      return e.key.is_scalar() && e.key.text == entry.key.text;
    };
    auto it = std::find_if(base.entries.begin(), base.entries.end(), same_key);
    if (it == base.entries.end()) {
      base.entries.push_back(entry);
    } else {
      // The overlay's key position wins too: an error about the merged value should point at the
      // file that set it last.
      it->key = entry.key;
      it->value = MergeYaml(std::move(it->value), entry.value);
    }
  }
  return base;
}

}  // namespace isoflop::sweep
