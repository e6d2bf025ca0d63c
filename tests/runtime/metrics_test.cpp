#include "runtime/metrics.hpp"

#include <gtest/gtest.h>

using namespace parley::metrics;

TEST(metrics, counter_gauge_and_histogram_render_in_prometheus_text) {
  registry r;
  r.get_counter("parley_test_total", "A test counter", {{"route", "/v1/x"}, {"status", "200"}})
      .inc(3);
  r.get_gauge("parley_test_gauge", "A gauge").set(7);
  auto& h = r.get_histogram("parley_test_seconds", "A histogram", {}, {0.1, 1});
  h.observe(0.05);
  h.observe(0.5);
  h.observe(5);
  auto text = r.render();
  EXPECT_NE(text.find("# TYPE parley_test_total counter"), std::string::npos);
  EXPECT_NE(text.find("parley_test_total{route=\"/v1/x\",status=\"200\"} 3"), std::string::npos);
  EXPECT_NE(text.find("parley_test_gauge 7"), std::string::npos);
  EXPECT_NE(text.find("parley_test_seconds_bucket{le=\"0.1\"} 1"), std::string::npos);
  EXPECT_NE(text.find("parley_test_seconds_bucket{le=\"+Inf\"} 3"), std::string::npos);
  EXPECT_NE(text.find("parley_test_seconds_count 3"), std::string::npos);
}

TEST(metrics, same_name_and_labels_return_the_same_series) {
  registry r;
  auto& a = r.get_counter("c_total", "c", {{"k", "v"}});
  auto& b = r.get_counter("c_total", "c", {{"k", "v"}});
  EXPECT_EQ(&a, &b);
  EXPECT_THROW(r.get_gauge("c_total", "c"), std::logic_error);
}

TEST(metrics, label_values_are_escaped) {
  registry r;
  r.get_counter("e_total", "e", {{"path", "a\"b\\c\nd"}}).inc();
  EXPECT_NE(r.render().find(R"(e_total{path="a\"b\\c\nd"} 1)"), std::string::npos);
}
