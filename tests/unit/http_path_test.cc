#include "data-plane/http/path/path.h"

#include <catch2/catch.hpp>
#include <string>

namespace weft::http {
namespace {

std::string Normalized(std::string_view path, bool normalize, bool merge) {
  std::string out = "unset";
  PathNormalization options{normalize, merge};
  if (!NormalizePath(path, options, &out)) return "<refused>";
  return out;
}

TEST_CASE("normalize_path: RFC 3986 dot segments, as its §5.4 examples resolve them") {
  struct Case {
    std::string_view in, out;
  };
  for (const Case& c : {
           Case{"/", "/"},
           Case{"/a/b/c/./../../g", "/a/g"},
           Case{"/a/b/..", "/a/"},
           Case{"/a/b/.", "/a/b/"},
           Case{"/.", "/"},
           Case{"/..", "/"},
           Case{"/../../admin", "/admin"},
           Case{"/public/../admin/x", "/admin/x"},
           Case{"/a/..b/.c/b..", "/a/..b/.c/b.."},
           Case{"//admin//x", "//admin//x"},  // slashes are merge_slashes' business
           Case{"/a/./b/../c?x=/../y", "/a/c?x=/../y"},
       }) {
    INFO(c.in);
    CHECK(Normalized(c.in, true, false) == c.out);
  }
}

TEST_CASE("normalize_path: unreserved escapes are decoded first, others upper-cased") {
  CHECK(Normalized("/%61dmin", true, false) == "/admin");
  CHECK(Normalized("/%7Euser/%7e", true, false) == "/~user/~");
  CHECK(Normalized("/a/%2e%2E/admin", true, false) == "/admin");
  CHECK(Normalized("/a%2fb%2F%3a%00", true, false) == "/a%2Fb%2F%3A%00");
  CHECK(Normalized("/a?%61", true, false) == "/a?%61");  // the query is left alone
  for (std::string_view bad : {"/%", "/%4", "/%zz", "/a%g0", "/%%41"}) {
    INFO(bad);
    CHECK(Normalized(bad, true, false) == "<refused>");
  }
  CHECK(Normalized("/%zz", false, true) == "/%zz");  // only normalize_path reads escapes
}

TEST_CASE("merge_slashes collapses runs of '/' in the path, not in the query") {
  CHECK(Normalized("//admin//x///", false, true) == "/admin/x/");
  CHECK(Normalized("/a//b?c//d", false, true) == "/a/b?c//d");
  // Both: dot segments first (Envoy's order), so an empty segment before ".." is the one dropped.
  CHECK(Normalized("/public/..//admin", true, true) == "/admin");
  CHECK(Normalized("/a/./b/../c//d/%7euser%2fx", true, true) == "/a/c/d/~user%2Fx");
}

TEST_CASE("Targets that are not paths pass unchanged") {
  CHECK(Normalized("*", true, true) == "*");
  CHECK(Normalized("example.com:443", true, true) == "example.com:443");
}

}  // namespace
}  // namespace weft::http
