// pods/sim/history_html.hpp — a history and its linearization as one HTML page
//
// Problem:       "illegal" after a ten-thousand-operation run says that a bug exists, not
//                where: the engineer needs to see which clients were doing what when the
//                search could go no further.
// Solution:      write_html draws each client's operations as bars on a time line (one row
//                per client; x is the rank of the event time, so bursts and lulls take equal
//                room), numbers every bar with its place in the linearization found, and for a
//                history that is not linearizable marks the operations left over and, in red,
//                the ones that could have gone next when the search got stuck: none of them is
//                legal after the highlighted prefix. Below it, each partition's order as a
//                table. The page is self-contained (inline CSS and JS, no network): attach it
//                to a bug report.
// Guarantees:    Every operation of the history appears once on the time line; every text
//                (inputs, outputs) is HTML-escaped. Hovering a bar shows its details and lights
//                up the rest of its partition.
// Not provided:  The model state along the linearization (the page has no model); live
//                updates.
// Thread safety: write_html is reentrant; it reads its arguments only.
// Errors:        std::system_error naming the path when the file cannot be written;
//                std::bad_alloc. Printing a value that has no text is a compile error naming
//                the customisation points.
// Cost:          O(operations log operations) time; the page holds every operation.
// Example:
//   auto ops = history.operations();
//   auto result = pods::sim::check_linearizable(model, std::span(ops));
//   if (result.verdict != pods::sim::Verdict::ok)
//     pods::sim::write_html(ops, result, "/tmp/history.html");
// Example context: using Reg = pods::sim::RegisterModel<int>;
// Example context: inline const Reg model;
// Example context: inline pods::sim::History<Reg::Input, Reg::Output> history;
//
// Values are printed by a Describe callable: the default uses, in order, a string-like value
// itself, std::to_string for arithmetic types, a to_string(value) found by argument-dependent
// lookup, and operator<<; pass any callable taking const Input& and const Output& to print
// your own types otherwise.
#pragma once

#include <pods/sim/history.hpp>
#include <pods/sim/linearizability.hpp>

#include <algorithm>
#include <cerrno>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace pods::sim {

namespace detail::html {
// clang-format off
template <class T>
concept AdlToString = requires(const T& v) {
  { to_string(v) } -> std::convertible_to<std::string>;
};
template <class T>
concept Streamable = requires(std::ostream& os, const T& v) { os << v; };
// clang-format on
}  // namespace detail::html

// DescribeValue: the default printer of inputs and outputs (see the header comment).
struct DescribeValue {
  template <class T>
  std::string operator()(const T& v) const {
    if constexpr (std::is_convertible_v<const T&, std::string_view>) {
      return std::string(std::string_view(v));
    } else if constexpr (std::is_arithmetic_v<T>) {
      return std::to_string(v);
    } else if constexpr (detail::html::AdlToString<T>) {
      return std::string(to_string(v));
    } else if constexpr (detail::html::Streamable<T>) {
      std::ostringstream os;
      os << v;
      return os.str();
    } else {
      static_assert(detail::html::Streamable<T>,
                    "write_html: give the value a to_string(value) found by argument-dependent "
                    "lookup or an operator<<, or pass a Describe callable");
      return {};
    }
  }
};

// Returns `text` with &, <, >, " and ' replaced by HTML character references.
inline std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

namespace detail::html {

inline constexpr std::string_view kStyle = R"(
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px} .ok{color:#1a7f37} .illegal{color:#c62828} .unknown{color:#9a6700}
.summary{color:#555;margin-bottom:16px}
.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:middle;border-radius:2px}
.timeline{position:relative;border:1px solid #ddd;border-radius:4px;margin:12px 0 24px;background:#fafafa}
.lane{position:relative;height:30px;border-bottom:1px solid #eee}
.lane-name{position:absolute;left:0;width:88px;top:6px;font-size:12px;color:#555;text-align:right}
.track{position:absolute;left:96px;right:8px;top:0;bottom:0}
.op{position:absolute;top:4px;height:20px;border-radius:3px;font-size:11px;line-height:20px;
  padding:0 4px;box-sizing:border-box;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;
  cursor:pointer;min-width:6px;color:#fff}
.op.placed{background:#2e7d32}
.op.left{background:#9e9e9e}
.op.stuck{background:#c62828;outline:2px solid #ffb300}
.op.never{background-image:linear-gradient(90deg,rgba(255,255,255,0) 60%,rgba(255,255,255,.85))}
.op.lit{box-shadow:0 0 0 2px #1565c0}
.op b{font-weight:600;margin-right:4px}
#info{position:sticky;top:0;background:#fff;border:1px solid #ccc;padding:6px 10px;min-height:20px;
  border-radius:4px;font-size:13px}
table{border-collapse:collapse;margin:6px 0 20px;font-size:13px}
td,th{border:1px solid #ddd;padding:2px 8px;text-align:left}
tr.stuck td{background:#ffebee}
)";

inline constexpr std::string_view kScript = R"(
(function(){
  var ops=document.querySelectorAll('.op');
  var info=document.getElementById('info');
  function light(part,on){
    if(part==='')return;
    document.querySelectorAll('.op[data-part="'+part+'"]').forEach(function(e){
      e.classList.toggle('lit',on);});
  }
  ops.forEach(function(e){
    e.addEventListener('mouseenter',function(){info.textContent=e.getAttribute('title');light(e.dataset.part,true);});
    e.addEventListener('mouseleave',function(){light(e.dataset.part,false);});
  });
  document.getElementById('rendered').textContent=String(ops.length);
})();
)";

}  // namespace detail::html

// Writes one self-contained HTML page to `path` showing `history` (the operations that were
// checked) and `result` (what check_linearizable or check_sequential said about them).
// `describe` prints inputs and outputs. Throws std::system_error naming the path when the file
// cannot be written. Allocates.
template <class Input, class Output, class Describe = DescribeValue>
void write_html(std::type_identity_t<std::span<const Operation<Input, Output>>> history,
                const CheckResult<Input, Output>& result, const std::filesystem::path& path,
                Describe describe = {}) {
  using detail::html::kScript;
  using detail::html::kStyle;
  const std::size_t n = history.size();
  // Where each operation went: partition and position, or nothing.
  std::vector<std::ptrdiff_t> part(n, -1), position(n, -1);
  for (std::size_t p = 0; p < result.linearizations.size(); ++p) {
    for (std::size_t k = 0; k < result.linearizations[p].size(); ++k) {
      const std::size_t i = result.linearizations[p][k];
      if (i < n) {
        part[i] = static_cast<std::ptrdiff_t>(p);
        position[i] = static_cast<std::ptrdiff_t>(k);
      }
    }
  }
  // The stuck point: among the operations not placed, those called before the earliest
  // pending return could have gone next, and none did.
  std::vector<char> stuck(n, 0);
  std::size_t left = 0, stuck_count = 0;
  if (result.verdict != Verdict::ok) {
    std::int64_t bound = never;
    for (std::size_t i = 0; i < n; ++i) {
      if (part[i] >= 0) continue;
      ++left;
      const bool free = !history[i].output && history[i].ret == never;
      if (!free) bound = std::min(bound, history[i].ret);
    }
    for (std::size_t i = 0; i < n; ++i)
      if (part[i] < 0 && history[i].call <= bound) {
        stuck[i] = 1;
        ++stuck_count;
      }
  }
  // x positions: the rank of each distinct finite time; `never` is the right edge.
  std::vector<std::int64_t> times;
  for (const auto& op : history) {
    times.push_back(op.call);
    if (op.ret != never) times.push_back(op.ret);
  }
  std::sort(times.begin(), times.end());
  times.erase(std::unique(times.begin(), times.end()), times.end());
  const double slots = static_cast<double>(times.size() + 1);
  const auto x = [&](std::int64_t t) {
    if (t == never) return 100.0;
    const auto rank = std::lower_bound(times.begin(), times.end(), t) - times.begin();
    return 100.0 * (static_cast<double>(rank) + 0.5) / slots;
  };
  std::map<std::uint64_t, std::vector<std::size_t>> lanes;
  for (std::size_t i = 0; i < n; ++i)
    lanes[history[i].client].push_back(i);

  const auto text_of = [&](std::size_t i) {
    const auto& op = history[i];
    return describe(op.input) + " -> " + (op.output ? describe(*op.output) : std::string("?"));
  };
  const auto when = [](std::int64_t t) {
    return t == never ? std::string("never") : std::to_string(t);
  };

  std::ostringstream out;
  const char* verdict = to_string(result.verdict);
  out << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      << "<title>history: " << verdict << "</title><style>" << kStyle << "</style></head><body>\n";
  out << "<h1 class=\"" << verdict << "\">" << verdict << "</h1>\n<div class=\"summary\">" << n
      << " operations, " << lanes.size() << " clients, " << result.linearizations.size()
      << " partitions; <span id=\"rendered\">" << n << "</span> drawn.";
  if (result.verdict == Verdict::illegal) {
    out << " Stuck: " << left << " operations could not be placed; none of the " << stuck_count
        << " in red can go next after the green ones.";
  } else if (result.verdict == Verdict::unknown) {
    out << " The budget ran out: green is the longest prefix found.";
  }
  out << "</div>\n<div class=\"legend\"><span><i style=\"background:#2e7d32\"></i>placed (number: "
         "position in its partition)</span><span><i style=\"background:#c62828\"></i>could go "
         "next, none is legal</span><span><i style=\"background:#9e9e9e\"></i>not placed</span>"
         "<span>fading right edge: never returned</span></div>\n";
  out << "<div id=\"info\">hover an operation</div>\n<div class=\"timeline\">\n";
  for (const auto& [client, ops] : lanes) {
    out << "<div class=\"lane\"><div class=\"lane-name\">client " << client
        << "</div><div class=\"track\">\n";
    for (std::size_t i : ops) {
      const auto& op = history[i];
      const double from = x(op.call);
      const double width = std::max(0.4, x(op.ret) - from);
      const char* cls = part[i] >= 0 ? "placed" : (stuck[i] ? "stuck" : "left");
      // Appended piece by piece: g++ 12 at -O3 warns falsely (-Wrestrict) on "literal" + string.
      std::string title = "#";
      for (const std::string& piece :
           {std::to_string(i), std::string(" client "), std::to_string(op.client),
            std::string(": "), text_of(i), std::string("  ["), when(op.call), std::string(", "),
            when(op.ret), std::string("]")})
        title += piece;
      if (part[i] >= 0) {
        title += "  partition ";
        title += std::to_string(part[i]);
        title += ", position ";
        title += std::to_string(position[i]);
      }
      out << "<div class=\"op " << cls << (op.ret == never ? " never" : "") << "\" id=\"op-" << i
          << "\" data-part=\"" << (part[i] >= 0 ? std::to_string(part[i]) : std::string())
          << "\" style=\"left:" << from << "%;width:" << width << "%\" title=\""
          << html_escape(title) << "\">";
      if (part[i] >= 0) {
        out << "<b>";
        if (result.linearizations.size() > 1) out << part[i] << ":";
        out << position[i] << "</b>";
      }
      out << html_escape(text_of(i)) << "</div>\n";
    }
    out << "</div></div>\n";
  }
  out << "</div>\n";
  for (std::size_t p = 0; p < result.linearizations.size(); ++p) {
    const auto& lin = result.linearizations[p];
    out << "<h3>partition " << p << ": " << lin.size() << " operations placed</h3>\n"
        << "<table><tr><th>position</th><th>op</th><th>client</th><th>input</th>"
        << "<th>output</th><th>call</th><th>return</th></tr>\n";
    for (std::size_t k = 0; k < lin.size(); ++k) {
      const std::size_t i = lin[k];
      if (i >= n) continue;
      const auto& op = history[i];
      out << "<tr><td>" << k << "</td><td>" << i << "</td><td>" << op.client << "</td><td>"
          << html_escape(describe(op.input)) << "</td><td>"
          << html_escape(op.output ? describe(*op.output) : std::string("?")) << "</td><td>"
          << when(op.call) << "</td><td>" << when(op.ret) << "</td></tr>\n";
    }
    out << "</table>\n";
  }
  if (stuck_count > 0) {
    out << "<h3>could go next after the prefix, none legal</h3>\n<table><tr><th>op</th>"
        << "<th>client</th><th>input</th><th>output</th><th>call</th><th>return</th></tr>\n";
    for (std::size_t i = 0; i < n; ++i) {
      if (!stuck[i]) continue;
      const auto& op = history[i];
      out << "<tr class=\"stuck\"><td>" << i << "</td><td>" << op.client << "</td><td>"
          << html_escape(describe(op.input)) << "</td><td>"
          << html_escape(op.output ? describe(*op.output) : std::string("?")) << "</td><td>"
          << when(op.call) << "</td><td>" << when(op.ret) << "</td></tr>\n";
    }
    out << "</table>\n";
  }
  out << "<script>" << kScript << "</script>\n</body></html>\n";

  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  const std::string page = out.str();
  if (file) file.write(page.data(), static_cast<std::streamsize>(page.size()));
  if (file) file.close();
  if (!file)
    throw std::system_error(errno ? errno : EIO, std::generic_category(),
                            "write_html: cannot write " + path.string());
}

}  // namespace pods::sim
