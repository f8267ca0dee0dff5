// One libtorch training-step benchmark process for tools/bench/compare.py: no Python in
// the loop. Loads the TorchScript trace of a module (traced in train() mode by
// bench_models.py, so the architecture is written once), trains it with torch::optim::Adam
// on one batch given as raw little-endian arrays, and prints one JSON object: median_ms,
// min_ms, samples_per_s, peak_rss_mb (VmHWM).
//
//   libtorch_step MODEL.pt --input float32|int64:D0,D1,...:FILE --label float32|int64:D0,...:FILE
//                 --loss cross_entropy|mse --threads N [--steps 10] [--warmup 3] [--lr 1e-4]
#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

// "float32:32,3,64,64:/path/x.bin" -> a tensor with the file's contents.
torch::Tensor read_array(const std::string& spec) {
  const size_t a = spec.find(':'), b = spec.find(':', a + 1);
  const std::string dtype = spec.substr(0, a), path = spec.substr(b + 1);
  std::vector<int64_t> shape;
  std::stringstream dims(spec.substr(a + 1, b - a - 1));
  for (std::string d; std::getline(dims, d, ',');) shape.push_back(std::stoll(d));
  const auto type = dtype == "int64" ? torch::kInt64 : torch::kFloat32;
  torch::Tensor t = torch::empty(shape, type);
  std::ifstream f(path, std::ios::binary);
  f.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
  if (!f) throw std::runtime_error("cannot read " + std::to_string(t.nbytes()) + " bytes from " + path);
  return t;
}

double peak_rss_mb() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0;
}

// CPU time of the whole process (all threads), steadier than wall time on a shared machine.
double process_cpu_ms() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
}

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL.pt --input SPEC --label SPEC --loss KIND --threads N\n", argv[0]);
    return 2;
  }
  std::string input_spec, label_spec, loss = "cross_entropy";
  int threads = 1, steps = 10, warmup = 3;
  double lr = 1e-4;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--input") input_spec = v;
    else if (k == "--label") label_spec = v;
    else if (k == "--loss") loss = v;
    else if (k == "--threads") threads = std::stoi(v);
    else if (k == "--steps") steps = std::stoi(v);
    else if (k == "--warmup") warmup = std::stoi(v);
    else if (k == "--lr") lr = std::stod(v);
  }
  try {
    torch::set_num_threads(threads);
    torch::jit::script::Module module = torch::jit::load(argv[1]);
    module.train();
    const torch::Tensor x = read_array(input_spec), label = read_array(label_spec);
    std::vector<torch::Tensor> params;
    for (const auto& p : module.parameters()) params.push_back(p);
    torch::optim::Adam optimizer(params, torch::optim::AdamOptions(lr));
    std::vector<double> times, cpu_times;
    for (int i = 0; i < warmup + steps; ++i) {
      const double cpu_start = process_cpu_ms();
      const auto start = std::chrono::steady_clock::now();
      optimizer.zero_grad();
      torch::Tensor out = module.forward({x}).toTensor();
      torch::Tensor l = loss == "mse" ? torch::mse_loss(out, label) : torch::cross_entropy_loss(out, label);
      l.backward();
      optimizer.step();
      if (i >= warmup) {
        times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
        cpu_times.push_back(process_cpu_ms() - cpu_start);
      }
    }
    const double median = median_of(times), median_cpu = median_of(cpu_times);
    std::printf("{\"median_ms\": %.4f, \"min_ms\": %.4f, \"samples_per_s\": %.3f, \"peak_rss_mb\": %.2f, "
                "\"median_cpu_ms\": %.4f, \"min_cpu_ms\": %.4f}\n",
                median, *std::min_element(times.begin(), times.end()), x.size(0) * 1e3 / median, peak_rss_mb(),
                median_cpu, *std::min_element(cpu_times.begin(), cpu_times.end()));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "libtorch_step: %s\n", e.what());
    return 1;
  }
  return 0;
}
