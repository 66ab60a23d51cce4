#include <pods/sim/history_html.hpp>

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

namespace fs = std::filesystem;
using pods::sim::KvModel;
using pods::sim::never;
using Reg = pods::sim::RegisterModel<int>;
using RegOp = pods::sim::Operation<Reg::Input, Reg::Output>;
using KvOp = pods::sim::Operation<KvModel::Input, KvModel::Output>;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           ("pods_history_html_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  static int& counter() {
    static int n = 0;
    return n;
  }
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
    ++n;
  return n;
}

// A stale read: the checker gets stuck after the write.
std::vector<RegOp> stale_read() {
  return {{1, Reg::write(1), Reg::write_result(), 0, 10},
          {2, Reg::read(), Reg::read_result(std::nullopt), 20, 30},
          {3, Reg::write(2), std::nullopt, 5, never},
          {3, Reg::read(), Reg::read_result(1), 25, 35}};
}

const char* kChromium = "/usr/bin/chromium";

// Runs headless Chromium on `page` with `flags`, in a fresh profile; returns its exit status.
int chromium(const fs::path& page, const std::string& flags, const fs::path& profile,
             const fs::path& out) {
  const std::string cmd = std::string("timeout 120 ") + kChromium +
                          " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run"
                          " --disable-background-networking --disable-component-update"
                          " --disable-sync --disable-dev-shm-usage --user-data-dir=" +
                          profile.string() + " " + flags + " file://" + page.string() + " > " +
                          out.string() + " 2>/dev/null";
  return std::system(cmd.c_str());
}

}  // namespace

TEST_CASE("write_html: the page holds every operation, the verdict and the stuck point",
          "[history_html]") {
  TempDir dir;
  const auto h = stale_read();
  const auto r = pods::sim::check_linearizable(Reg{}, std::span<const RegOp>(h));
  REQUIRE(r.verdict == pods::sim::Verdict::illegal);
  const fs::path page = dir.path / "h.html";
  pods::sim::write_html(h, r, page);
  const std::string html = read_file(page);
  CHECK(html.starts_with("<!DOCTYPE html>"));
  CHECK(count(html, "class=\"op ") == h.size());
  for (std::size_t i = 0; i < h.size(); ++i)
    CHECK(count(html, "id=\"op-" + std::to_string(i) + "\"") == 1);
  CHECK(count(html, "<h1 class=\"illegal\">illegal</h1>") == 1);
  CHECK(count(html, "class=\"op stuck") >= 1);  // the read that cannot go next
  CHECK(count(html, "write 1 -&gt; ok") >= 1);
  CHECK(count(html, "never") >= 1);
  // Self-contained: no external resources.
  CHECK(count(html, "http://") == 0);
  CHECK(count(html, "https://") == 0);
  CHECK(count(html, "src=") == 0);
}

TEST_CASE("write_html: every text is escaped; a Describe callable prints values",
          "[history_html]") {
  TempDir dir;
  const std::vector<KvOp> h = {
      {1, KvModel::put("<script>alert(1)</script>", "a&b\"'"), KvModel::put_result(), 0, 1},
      {2, KvModel::get("<script>alert(1)</script>"), KvModel::get_result("a&b\"'"), 2, 3}};
  const auto r = pods::sim::check_linearizable(KvModel{}, std::span<const KvOp>(h));
  REQUIRE(r.verdict == pods::sim::Verdict::ok);
  const fs::path page = dir.path / "kv.html";
  pods::sim::write_html(h, r, page);
  const std::string html = read_file(page);
  CHECK(count(html, "<script>alert") == 0);
  CHECK(count(html, "&lt;script&gt;alert(1)&lt;/script&gt;") >= 2);
  CHECK(count(html, "a&amp;b&quot;&#39;") >= 2);
  CHECK(count(html, "<h1 class=\"ok\">ok</h1>") == 1);
  CHECK(pods::sim::html_escape("<a href='x'>&\"</a>") ==
        "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;");

  struct Plain {
    int v;
  };
  const std::vector<pods::sim::Operation<Plain, Plain>> custom = {{7, {41}, Plain{42}, 0, 1}};
  const pods::sim::CheckResult<Plain, Plain> result{pods::sim::Verdict::ok, {{0}}};
  pods::sim::write_html(custom, result, dir.path / "custom.html",
                        [](const Plain& p) { return "<v" + std::to_string(p.v) + ">"; });
  const std::string c = read_file(dir.path / "custom.html");
  CHECK(count(c, "&lt;v41&gt; -&gt; &lt;v42&gt;") >= 1);
}

TEST_CASE("write_html: a path that cannot be written throws std::system_error naming it",
          "[history_html]") {
  const auto h = stale_read();
  const auto r = pods::sim::check_linearizable(Reg{}, std::span<const RegOp>(h));
  try {
    pods::sim::write_html(h, r, "/nonexistent-dir-pods/h.html");
    FAIL("no exception");
  } catch (const std::system_error& e) {
    CHECK(std::string(e.what()).find("/nonexistent-dir-pods/h.html") != std::string::npos);
  }
}

TEST_CASE("write_html: headless Chromium renders the page and its script runs",
          "[history_html][chromium]") {
  if (!fs::exists(kChromium))
    FAIL(
        "/usr/bin/chromium is missing: run scripts/install-deps.sh (it installs Debian's "
        "chromium package) to run this test");
  TempDir dir;
  // A history big enough to fill the screen: four clients, a few dozen operations.
  std::vector<RegOp> h;
  for (int i = 0; i < 40; ++i) {
    const auto client = std::uint64_t(i % 4);
    const std::int64_t call = i * 3;
    h.push_back({client, i % 2 ? Reg::read() : Reg::write(i), std::nullopt, call, call + 5});
  }
  for (auto& op : h)
    op.output =
        op.input.op == pods::sim::RegisterOp::read ? Reg::read_result(-1) : Reg::write_result();
  const auto r = pods::sim::check_linearizable(Reg{}, std::span<const RegOp>(h));
  REQUIRE(r.verdict == pods::sim::Verdict::illegal);
  const fs::path page = dir.path / "page.html";
  pods::sim::write_html(h, r, page);

  // The DOM after the script ran: it writes the number of bars it found into #rendered.
  const fs::path dom = dir.path / "dom.html";
  REQUIRE(chromium(page, "--dump-dom", dir.path / "profile-dom", dom) == 0);
  const std::string after = read_file(dom);
  CHECK(count(after, "class=\"op ") == h.size());
  CHECK(count(after, "<span id=\"rendered\">40</span>") == 1);

  // The screenshot: a PNG, and far larger than the screenshot of an empty page of the same
  // size (a blank page compresses to almost nothing).
  const fs::path png = dir.path / "page.png", blank_png = dir.path / "blank.png";
  const fs::path blank = dir.path / "blank.html";
  std::ofstream(blank) << "<!DOCTYPE html><html><body></body></html>";
  REQUIRE(chromium(page, "--window-size=1200,800 --screenshot=" + png.string(),
                   dir.path / "profile-shot", dir.path / "shot.log") == 0);
  REQUIRE(chromium(blank, "--window-size=1200,800 --screenshot=" + blank_png.string(),
                   dir.path / "profile-blank", dir.path / "blank.log") == 0);
  const std::string image = read_file(png);
  REQUIRE(image.size() > 8);
  CHECK(image.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0);
  const auto blank_size = fs::file_size(blank_png);
  CHECK(image.size() > 4 * blank_size);
  CHECK(image.size() > 20000);
}
