#include "src/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "onnxtrain/errors.h"

namespace onnxtrain {

namespace {

const char* const kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
constexpr double kCharWidth = 7;  // rough width of a 12px sans-serif character

// A coordinate or size. Data are filtered to finite values before they get here; the
// clamp only guards against overflow in extreme ranges, so the file always parses.
std::string num(double v) {
  if (!std::isfinite(v)) v = 0;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  std::string s = buf;
  s.erase(s.find_last_not_of('0') + 1);
  if (s.back() == '.') s.pop_back();
  return s == "-0" ? "0" : s;
}

std::string tick_label(double v, double step) {
  if (std::abs(v) < step * 1e-9) v = 0;  // -0 and accumulated rounding around zero
  char buf[32];
  if (step >= 1e-3 && std::abs(v) < 1e6) {
    const int decimals = std::max(0, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  } else {
    std::snprintf(buf, sizeof buf, "%.3g", v);
  }
  return buf;
}

std::string text(double x, double y, std::string_view s, const std::string& attrs = "") {
  return "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\"" + (attrs.empty() ? "" : " " + attrs) + ">" +
         xml_escape(s) + "</text>\n";
}

std::string line(double x1, double y1, double x2, double y2, const std::string& attrs) {
  return "<line x1=\"" + num(x1) + "\" y1=\"" + num(y1) + "\" x2=\"" + num(x2) + "\" y2=\"" + num(y2) + "\" " +
         attrs + "/>\n";
}

std::string svg_open(double width, double height) {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(width) +
         "\" height=\"" + num(height) + "\" viewBox=\"0 0 " + num(width) + " " + num(height) +
         "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
}

struct Range {
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  }
  bool empty() const { return lo > hi; }
};

// Maps data values onto [p0, p1] (pixels) through the tick-rounded domain.
struct Axis {
  std::vector<double> ticks;
  double p0 = 0, p1 = 1;
  double at(double v) const {
    const double lo = ticks.front(), hi = ticks.back();
    return p0 + (v - lo) / (hi - lo) * (p1 - p0);
  }
  double step() const { return ticks.size() > 1 ? ticks[1] - ticks[0] : 1; }
};

Axis make_axis(const Range& r, bool integer, double p0, double p1) {
  Axis a;
  a.ticks = r.empty() ? nice_ticks(0, 1, 5, integer) : nice_ticks(r.lo, r.hi, 5, integer);
  a.p0 = p0;
  a.p1 = p1;
  return a;
}

double series_x(const ChartSeries& s, size_t i) { return s.x.empty() ? static_cast<double>(i + 1) : s.x[i]; }

// The polyline with gaps at non-finite values, plus dots where a run is a single point
// (a lone point has no segment to show it) or the series is short enough to mark all.
std::string series_svg(const ChartSeries& s, const Axis& x, const Axis& y, const char* colour) {
  std::string path, dots;
  const bool mark_all = s.y.size() <= 40;
  auto dot = [&](double px, double py) {
    dots += "<circle cx=\"" + num(px) + "\" cy=\"" + num(py) + "\" r=\"2.5\" fill=\"" + colour + "\"/>\n";
  };
  std::vector<std::pair<double, double>> run;  // pixels of the current stretch of finite points
  for (size_t i = 0; i <= s.y.size(); ++i) {
    if (i < s.y.size() && std::isfinite(s.y[i]) && std::isfinite(series_x(s, i))) {
      run.emplace_back(x.at(series_x(s, i)), y.at(s.y[i]));
      continue;
    }
    if (run.size() > 1)
      for (size_t k = 0; k < run.size(); ++k)
        path.append(k ? "L" : "M").append(num(run[k].first)).append(" ").append(num(run[k].second)).append(" ");
    if (mark_all || run.size() == 1)
      for (auto [px, py] : run) dot(px, py);
    run.clear();
  }
  std::string out;
  if (!path.empty())
    out += "<path d=\"" + path.substr(0, path.size() - 1) + "\" fill=\"none\" stroke=\"" + colour +
           "\" stroke-width=\"1.8\"" + (s.right_axis ? " stroke-dasharray=\"6 3\"" : "") + "/>\n";
  return out + dots;
}

}  // namespace

std::string xml_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    const auto u = static_cast<unsigned char>(ch);
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        if (u < 0x20 && ch != '\t' && ch != '\n' && ch != '\r')
          out += "\xEF\xBF\xBD";
        else
          out += ch;
    }
  }
  return out;
}

std::vector<double> nice_ticks(double lo, double hi, int target, bool integer) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) throw DataError("nice_ticks: bounds must be finite");
  if (lo > hi) std::swap(lo, hi);
  if (hi - lo <= std::abs(hi) * 1e-12) {  // constant series: a band around the value
    const double d = integer ? 1 : (lo == 0 ? 1 : std::abs(lo) * 0.1);
    lo -= d;
    hi += d;
  }
  double raw = (hi - lo) / std::max(target - 1, 1);
  if (!std::isfinite(raw)) raw = std::numeric_limits<double>::max() / 16;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  double step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
  if (integer) step = std::max(step, 1.0);
  const double first = std::floor(lo / step), last = std::ceil(hi / step);
  std::vector<double> ticks;
  for (double k = first; k <= last && ticks.size() < 100; ++k) ticks.push_back(k * step);
  if (ticks.size() < 2) ticks.push_back(ticks.empty() ? lo : ticks.back() + step);
  return ticks;
}

std::string line_chart_svg(const LineChart& c) {
  if (c.width < 200 || c.height < 150)
    throw DataError("line chart: size " + std::to_string(c.width) + "x" + std::to_string(c.height) +
                    " is too small (at least 200x150)");
  Range xr, yr[2];
  bool integer_x = true, has_right = false;
  for (const auto& s : c.series) {
    if (!s.x.empty() && s.x.size() != s.y.size())
      throw DataError("line chart: series '" + s.name + "' has " + std::to_string(s.x.size()) + " x values and " +
                      std::to_string(s.y.size()) + " y values");
    has_right |= s.right_axis;
    for (size_t i = 0; i < s.y.size(); ++i) {
      const double x = series_x(s, i);
      if (!std::isfinite(x) || !std::isfinite(s.y[i])) continue;
      xr.add(x);
      yr[s.right_axis].add(s.y[i]);
      integer_x &= x == std::round(x);
    }
  }

  // Legend entries flow left to right under the title, wrapping at the plot's width.
  const double left = 70, right = c.width - (has_right ? 70.0 : 20.0);
  std::string legend;
  double lx = left, ly = c.title.empty() ? 18 : 44;
  for (size_t i = 0; i < c.series.size(); ++i) {
    const auto& s = c.series[i];
    const double w = 34 + kCharWidth * static_cast<double>(s.name.size()) + 16;
    if (lx > left && lx + w > right) lx = left, ly += 18;
    const char* colour = kPalette[i % std::size(kPalette)];
    legend += line(lx, ly - 4, lx + 26, ly - 4,
                   std::string("stroke=\"") + colour + "\" stroke-width=\"2\"" +
                       (s.right_axis ? " stroke-dasharray=\"6 3\"" : ""));
    legend += text(lx + 32, ly, s.name);
    lx += w;
  }
  const double top = ly + 14, bottom = c.height - 46.0;

  Axis x = make_axis(xr, integer_x, left, right);
  Axis y = make_axis(yr[0], false, bottom, top);
  Axis y2 = make_axis(yr[1], false, bottom, top);

  std::string out = svg_open(c.width, c.height);
  if (!c.title.empty()) out += text(c.width / 2.0, 22, c.title, "text-anchor=\"middle\" font-size=\"15\"");
  out += legend;
  for (double t : y.ticks) {
    out += line(left, y.at(t), right, y.at(t), "stroke=\"#e5e5e5\"");
    out += text(left - 6, y.at(t) + 4, tick_label(t, y.step()), "text-anchor=\"end\"");
  }
  if (has_right)
    for (double t : y2.ticks) out += text(right + 6, y2.at(t) + 4, tick_label(t, y2.step()));
  for (double t : x.ticks) {
    out += line(x.at(t), top, x.at(t), bottom, "stroke=\"#e5e5e5\"");
    out += text(x.at(t), bottom + 16, tick_label(t, x.step()), "text-anchor=\"middle\"");
  }
  out += "<rect x=\"" + num(left) + "\" y=\"" + num(top) + "\" width=\"" + num(right - left) + "\" height=\"" +
         num(bottom - top) + "\" fill=\"none\" stroke=\"#333\"/>\n";
  out += text((left + right) / 2, c.height - 12.0, c.x_label, "text-anchor=\"middle\"");
  const double mid = (top + bottom) / 2;
  out += text(16, mid, c.y_label, "text-anchor=\"middle\" transform=\"rotate(-90 16 " + num(mid) + ")\"");
  if (has_right)
    out += text(c.width - 12.0, mid, c.y2_label,
                "text-anchor=\"middle\" transform=\"rotate(90 " + num(c.width - 12.0) + " " + num(mid) + ")\"");
  // The tick-rounded domains contain every point, so nothing needs clipping (a clip would
  // halve the dots on the plot's edge).
  for (size_t i = 0; i < c.series.size(); ++i)
    out += series_svg(c.series[i], x, c.series[i].right_axis ? y2 : y, kPalette[i % std::size(kPalette)]);
  return out + "</svg>\n";
}

std::string confusion_matrix_svg(const ConfusionMatrix& m, std::string_view title) {
  const int64_t n = m.classes();
  const double cell = std::clamp(560.0 / static_cast<double>(std::max<int64_t>(n, 1)), 6.0, 48.0);
  const double font = std::clamp(cell * 0.45, 5.0, 12.0);
  size_t longest = 0;
  for (int64_t k = 0; k < n; ++k) longest = std::max(longest, m.class_name(k).size());
  const double label = std::min(kCharWidth * font / 12 * static_cast<double>(longest) + 10, 220.0);
  const double left = 34 + label, top = 58 + label;
  const double width = left + cell * static_cast<double>(n) + 90, height = top + cell * static_cast<double>(n) + 20;

  std::string out = svg_open(std::max(width, 240.0), height);
  out += text(std::max(width, 240.0) / 2, 22, title, "text-anchor=\"middle\" font-size=\"15\"");
  if (n == 0) return out + text(20, 50, "no classes") + "</svg>\n";
  const double grid = cell * static_cast<double>(n);
  out += text(left + grid / 2, 44, "predicted", "text-anchor=\"middle\"");
  out += text(14, top + grid / 2, "true", "text-anchor=\"middle\" transform=\"rotate(-90 14 " + num(top + grid / 2) + ")\"");
  const std::string fs = "font-size=\"" + num(font) + "\"";
  for (int64_t k = 0; k < n; ++k) {
    const double c = static_cast<double>(k) * cell + cell / 2;
    out += text(left - 5, top + c + font / 3, m.class_name(k), "text-anchor=\"end\" " + fs);
    const double cx = left + c + font / 3, cy = top - 5;
    out += text(cx, cy, m.class_name(k), fs + " transform=\"rotate(-90 " + num(cx) + " " + num(cy) + ")\"");
  }
  for (int64_t t = 0; t < n; ++t) {
    const int64_t row = m.support(t);
    for (int64_t p = 0; p < n; ++p) {
      const int64_t count = m.count(t, p);
      const double share = row ? static_cast<double>(count) / static_cast<double>(row) : 0;
      // White to dark blue (matplotlib's "Blues" end points).
      char fill[8];
      std::snprintf(fill, sizeof fill, "#%02x%02x%02x", static_cast<int>(std::lround(255 - share * 247)),
                    static_cast<int>(std::lround(255 - share * 207)), static_cast<int>(std::lround(255 - share * 148)));
      const double x = left + static_cast<double>(p) * cell, y = top + static_cast<double>(t) * cell;
      char tip[64];
      std::snprintf(tip, sizeof tip, ": %lld (%.1f%% of the row)", static_cast<long long>(count), share * 100);
      out += "<rect x=\"" + num(x) + "\" y=\"" + num(y) + "\" width=\"" + num(cell) + "\" height=\"" + num(cell) +
             "\" fill=\"" + fill + "\" stroke=\"#ddd\"><title>true " + xml_escape(m.class_name(t)) + ", predicted " +
             xml_escape(m.class_name(p)) + tip + "</title></rect>\n";
      if (cell >= 24)
        out += text(x + cell / 2, y + cell / 2 + font / 3, std::to_string(count),
                    "text-anchor=\"middle\" " + fs + " fill=\"" + (share > 0.5 ? "white" : "black") + "\"");
    }
  }
  // Colour key: what the shading means.
  const double kx = left + grid + 24;
  out += "<defs><linearGradient id=\"share\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\"><stop offset=\"0\" "
         "stop-color=\"#ffffff\"/><stop offset=\"1\" stop-color=\"#08306b\"/></linearGradient></defs>\n";
  out += "<rect x=\"" + num(kx) + "\" y=\"" + num(top) + "\" width=\"14\" height=\"" + num(grid) +
         "\" fill=\"url(#share)\" stroke=\"#999\"/>\n";
  out += text(kx + 18, top + 10, "100%") + text(kx + 18, top + grid, "0%");
  out += text(kx + 18, top + grid / 2, "of row", "font-size=\"10\"");
  return out + "</svg>\n";
}

}  // namespace onnxtrain
