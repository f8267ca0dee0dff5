// The library training loop (Trainer::fit) on the bundled digits CNN: the run directory,
// callbacks, stop + resume bit-identity, early stopping, divergence and validation batches.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;
namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

size_t line_count(const fs::path& path) {
  const std::string text = slurp(path);
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// Records what a fit reports, and can ask it to stop after a given batch.
struct Recorder : Callback {
  Trainer* trainer = nullptr;
  int64_t stop_after = -1;  // micro-batch
  std::vector<EpochBeginEvent> begins;
  std::vector<StepEvent> steps;
  std::vector<EpochEndEvent> ends;
  std::optional<FitPlan> plan;
  std::optional<FitStatus> status;

  void on_fit_begin(const FitPlan& p) override { plan = p; }
  void on_epoch_begin(const EpochBeginEvent& e) override { begins.push_back(e); }
  void on_step_end(const StepEvent& e) override {
    steps.push_back(e);
    if (e.micro_batch == stop_after) trainer->request_stop();
  }
  void on_epoch_end(const EpochEndEvent& e) override { ends.push_back(e); }
  void on_fit_end(const FitResult& r) override { status = r.status; }
};

class TrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("onnxtrain_trainer_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    // 96 training samples (6 batches of 16) and 64 validation samples keep each fit short.
    std::vector<int64_t> first(160);
    std::iota(first.begin(), first.end(), 0);
    DatasetPtr all = open_arrays(digits_ + "train.npz");
    train_ = subset(all, {first.begin(), first.begin() + 96});
    val_ = subset(all, {first.begin() + 96, first.end()});
    options_.loss.kind = "cross_entropy";
    options_.optimizer.kind = "adam";
    options_.optimizer.lr = 3e-3;
    options_.threads = 2;
    fit_.epochs = 2;
    fit_.batch_size = 16;
    fit_.seed = 7;
  }
  void TearDown() override { fs::remove_all(dir_); }
  Model model() const { return Model::load(digits_ + "digits_cnn_eval.onnx"); }

  const std::string digits_ = test::source_dir() + "/models/digits/";
  fs::path dir_;
  DatasetPtr train_, val_;
  TrainingOptions options_;
  FitOptions fit_;

  // Fits 3 epochs straight into straight/, then into cut/ with `cutter` ending the fit after
  // micro-batch 8 (mid epoch 2), resumes cut/ from its checkpoint and expects the model, the
  // last model file and the metrics of the straight fit. Returns the cut fit's result.
  FitResult cut_and_resume(Callback& cutter, std::function<void(Trainer&)> attach = {}) {
    Model straight = model();
    fit_.run_dir = dir_ / "straight";
    fit_.epochs = 3;
    EXPECT_EQ(Trainer(straight, options_, fit_, train_, val_).fit().status, FitStatus::Completed);

    Model cut = model();
    fit_.run_dir = dir_ / "cut";
    Trainer first(cut, options_, fit_, train_, val_);
    if (attach) attach(first);
    first.add_callback(cutter);
    const FitResult cut_result = first.fit();
    EXPECT_EQ(cut_result.micro_batches, 8);
    EXPECT_EQ(cut_result.checkpoint, fit_.run_dir / "checkpoint.npz");

    Model resumed = model();
    fit_.resume = fit_.run_dir / "checkpoint.npz";
    const FitResult r = Trainer(resumed, options_, fit_, train_, val_).fit();
    EXPECT_EQ(r.status, FitStatus::Completed);
    EXPECT_EQ(r.steps, 18);
    for (const auto& name : straight.initializer_names())
      EXPECT_TRUE(same_bytes(straight.initializer(name), resumed.initializer(name))) << name;
    EXPECT_TRUE(slurp(dir_ / "straight" / "last.onnx") == slurp(dir_ / "cut" / "last.onnx"));
    EXPECT_TRUE(slurp(dir_ / "straight" / "metrics.csv") == slurp(dir_ / "cut" / "metrics.csv"));
    return cut_result;
  }
};

TEST_F(TrainerTest, FitWritesTheRunDirectory) {
  Model m = model();
  fit_.run_dir = dir_ / "run";
  fit_.run_files["notes.txt"] = "hello\n";
  Trainer trainer(m, options_, fit_, train_, val_);
  EXPECT_EQ(trainer.plan().batches_per_epoch, 6);
  EXPECT_EQ(trainer.plan().metric, "accuracy");
  EXPECT_EQ(trainer.options().total_steps, 12) << "the schedule spans the fit";
  FitResult r = trainer.fit();
  EXPECT_EQ(r.status, FitStatus::Completed);
  EXPECT_EQ(r.steps, 12);
  EXPECT_EQ(r.epochs, 2);
  for (const char* name : {"metrics.csv", "results.svg", "last.onnx", "best.onnx", "checkpoint.npz",
                           "training_options.json", "confusion_matrix.csv", "confusion_matrix.svg", "class_report.csv"})
    EXPECT_TRUE(fs::exists(fit_.run_dir / name)) << name;
  EXPECT_EQ(slurp(fit_.run_dir / "notes.txt"), "hello\n");
  EXPECT_EQ(r.checkpoint, fit_.run_dir / "checkpoint.npz");
  EXPECT_EQ(r.best_model, fit_.run_dir / "best.onnx");
  const std::string csv = slurp(fit_.run_dir / "metrics.csv");
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "step,epoch,lr,loss,val_loss,val_accuracy");
  EXPECT_EQ(line_count(fit_.run_dir / "metrics.csv"), 1u + 12);
  ASSERT_TRUE(r.validation && r.validation->confusion);
  EXPECT_EQ(r.validation->confusion->classes(), 10);
  // last.onnx is the trained model.
  const std::string inference = (dir_ / "direct.onnx").string();
  trainer.session().export_inference_model(inference);
  EXPECT_TRUE(slurp(inference) == slurp(fit_.run_dir / "last.onnx"));
}

TEST_F(TrainerTest, CallbacksSeeEveryStepAndEpochAndNothingIsWrittenWithoutARunDir) {
  Model m = model();
  options_.accumulate = 2;
  fit_.epochs = 2;
  Trainer trainer(m, options_, fit_, train_, val_);
  Recorder rec;
  trainer.add_callback(rec);
  FitResult r = trainer.fit();
  ASSERT_EQ(rec.steps.size(), 12u);
  for (size_t i = 0; i < rec.steps.size(); ++i) {
    const StepEvent& e = rec.steps[i];
    EXPECT_EQ(e.micro_batch, static_cast<int64_t>(i) + 1);
    EXPECT_EQ(e.epoch, static_cast<int64_t>(i) / 6 + 1);
    EXPECT_EQ(e.batch, static_cast<int64_t>(i) % 6 + 1);
    EXPECT_EQ(e.updated, i % 2 == 1) << "accumulating 2 batches per step";
    EXPECT_EQ(e.step, static_cast<int64_t>(i + 1) / 2);
    EXPECT_EQ(e.epoch_samples, (static_cast<int64_t>(i) % 6 + 1) * 16);
    EXPECT_TRUE(std::isfinite(e.loss) && std::isfinite(e.epoch_loss));
  }
  ASSERT_EQ(rec.begins.size(), 2u);
  EXPECT_EQ(rec.begins[1].epoch, 2);
  EXPECT_EQ(rec.begins[1].batches, 6);
  ASSERT_EQ(rec.ends.size(), 2u);
  EXPECT_TRUE(rec.ends[0].is_best);
  EXPECT_TRUE(rec.ends[1].val_loss && rec.ends[1].val_metric);
  EXPECT_EQ(rec.ends[1].metric, "accuracy");
  EXPECT_EQ(*rec.ends[1].val_metric, r.validation->metrics.at("accuracy"));
  EXPECT_EQ(rec.status, FitStatus::Completed);
  EXPECT_EQ(r.steps, 6);
  EXPECT_TRUE(r.checkpoint.empty() && r.last_model.empty());
  EXPECT_FALSE(fs::exists(dir_)) << "no run directory, no files";
}

TEST_F(TrainerTest, ValidationUsesTheTrainingBatchSizeUnlessTold) {
  Model m = model();
  fit_.epochs = 1;
  FitResult r = Trainer(m, options_, fit_, train_, val_).fit();
  ASSERT_TRUE(r.validation);
  EXPECT_EQ(r.validation->batches, 4) << "64 validation samples in batches of 16";
  fit_.val_batch_size = 10;
  Model m2 = model();
  r = Trainer(m2, options_, fit_, train_, val_).fit();
  EXPECT_EQ(r.validation->batches, 7);
  // evaluate() on its own agrees with the fit's validation of the same model.
  TrainingSession session(m2, options_);
  Evaluation e = evaluate(session, val_, {.metrics = {"accuracy"}, .output = "logits", .batch_size = 64});
  EXPECT_EQ(e.batches, 1);
  EXPECT_EQ(e.metrics.at("accuracy"), r.validation->metrics.at("accuracy"));
  EXPECT_NEAR(e.loss, r.validation->loss, 1e-5);
}

TEST_F(TrainerTest, StopAndResumeEndBitIdenticalToAnUninterruptedFit) {
  Recorder rec;
  rec.stop_after = 8;
  const FitResult r = cut_and_resume(rec, [&](Trainer& first) { rec.trainer = &first; });
  EXPECT_EQ(r.status, FitStatus::Interrupted);
  EXPECT_EQ(rec.ends.size(), 1u);
}

// Throws from the fit's own thread, like a data or disk error would.
struct FailAt : Callback {
  int64_t micro_batch = -1;  // after this batch's step; 0: when the first epoch begins
  void on_epoch_begin(const EpochBeginEvent&) override {
    if (micro_batch == 0) throw DataError("failed before any batch");
  }
  void on_step_end(const StepEvent& e) override {
    if (e.micro_batch == micro_batch) throw DataError("image 17 is unreadable");
  }
};

TEST_F(TrainerTest, AnErrorMidFitCheckpointsTheLastStepAndTheResumeEndsBitIdentical) {
  FailAt fail;
  fail.micro_batch = 8;
  const FitResult r = cut_and_resume(fail);
  EXPECT_EQ(r.status, FitStatus::Failed);
  EXPECT_NE(r.message.find("image 17 is unreadable"), std::string::npos) << r.message;
  EXPECT_THROW(std::rethrow_exception(r.error), DataError);
}

TEST_F(TrainerTest, AnErrorBeforeAnyBatchTrainedIsThrownAsItIs) {
  Model m = model();
  fit_.run_dir = dir_ / "run";
  Trainer trainer(m, options_, fit_, train_, val_);
  FailAt fail;
  fail.micro_batch = 0;
  trainer.add_callback(fail);
  EXPECT_THROW(trainer.fit(), DataError);
  EXPECT_FALSE(fs::exists(fit_.run_dir / "checkpoint.npz"));
}

TEST_F(TrainerTest, EarlyStoppingAfterPatienceEpochs) {
  Model m = model();
  options_.optimizer.kind = "sgd";
  options_.optimizer.lr = 0;  // nothing improves after the first epoch
  fit_.epochs = 10;
  fit_.patience = 2;
  fit_.run_dir = dir_ / "run";
  FitResult r = Trainer(m, options_, fit_, train_, val_).fit();
  EXPECT_EQ(r.status, FitStatus::EarlyStopped);
  EXPECT_EQ(r.epochs, 3);
  EXPECT_EQ(r.bad_epochs, 2);
  EXPECT_EQ(line_count(fit_.run_dir / "metrics.csv"), 1u + 3 * 6);
}

TEST_F(TrainerTest, DivergenceKeepsTheLastGoodCheckpoint) {
  Model m = model();
  options_.optimizer.kind = "sgd";
  options_.optimizer.lr = 0.01;
  options_.schedule = parse_schedule("step:6:1e30");  // the lr explodes after epoch 1
  fit_.epochs = 3;
  fit_.run_dir = dir_ / "run";
  Recorder rec;
  Trainer trainer(m, options_, fit_, train_, nullptr);
  trainer.add_callback(rec);
  FitResult r = trainer.fit();
  EXPECT_EQ(r.status, FitStatus::Diverged);
  EXPECT_EQ(rec.status, FitStatus::Diverged);
  EXPECT_NE(r.message.find("the loss is"), std::string::npos) << r.message;
  EXPECT_EQ(r.epochs, 1);
  ASSERT_EQ(r.checkpoint, fit_.run_dir / "checkpoint.npz");
  Model again = model();
  TrainingSession session(again, trainer.options());
  session.load_checkpoint(r.checkpoint.string());
  EXPECT_EQ(session.step(), 6) << "the checkpoint of epoch 1";
  EXPECT_FALSE(fs::exists(fit_.run_dir / "confusion_matrix.csv"));
}

}  // namespace

// A validator scripted per epoch: its scores decide best.onnx, every metric it reports gets
// a column, and its run files come last.
struct ScriptedValidator : Validator {
  std::vector<double> scores;  // "score" per call
  int calls = 0;
  fs::path files_written_to;
  std::vector<std::string> metrics() const override { return {"score", "other"}; }
  bool higher_is_better(const std::string& metric) const override { return metric == "score"; }
  Evaluation validate(TrainingSession& session, DatasetPtr data) override {
    Evaluation e;
    e.loss = 0.5;
    e.metrics = {{"score", scores.at(calls)}, {"other", 10.0 + calls}};
    ++calls;
    (void)session, (void)data;
    return e;
  }
  void write_run_files(const fs::path& run_dir) override {
    files_written_to = run_dir;
    std::ofstream(run_dir / "validator.txt") << calls;
  }
};

TEST_F(TrainerTest, AValidatorReplacesEvaluateAndPicksTheBestModel) {
  Model m = model();
  fit_.run_dir = dir_ / "run";
  fit_.epochs = 3;
  auto validator = std::make_shared<ScriptedValidator>();
  validator->scores = {0.2, 0.7, 0.4};
  fit_.validator = validator;
  Recorder recorder;
  Trainer trainer(m, options_, fit_, train_, val_);
  trainer.add_callback(recorder);
  EXPECT_EQ(trainer.plan().metric, "score");
  const FitResult r = trainer.fit();
  EXPECT_EQ(r.status, FitStatus::Completed);
  EXPECT_EQ(validator->calls, 3);
  EXPECT_DOUBLE_EQ(r.best, 0.7);
  ASSERT_EQ(recorder.ends.size(), 3u);
  EXPECT_TRUE(recorder.ends[0].is_best);
  EXPECT_TRUE(recorder.ends[1].is_best);
  EXPECT_FALSE(recorder.ends[2].is_best) << "higher is better for score";
  const std::string csv = slurp(fit_.run_dir / "metrics.csv");
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "step,epoch,lr,loss,val_loss,val_score,val_other");
  EXPECT_NE(csv.find(",0.5,0.7,11\n"), std::string::npos) << csv;
  EXPECT_EQ(validator->files_written_to, fit_.run_dir);
  EXPECT_EQ(slurp(fit_.run_dir / "validator.txt"), "3");
  EXPECT_FALSE(fs::exists(fit_.run_dir / "confusion_matrix.csv")) << "the validator replaced evaluate()";

  // The other metric can be the score; an unknown one is refused before training.
  fit_.metric = "other";
  validator->calls = 0;
  Model m2 = model();
  EXPECT_EQ(Trainer(m2, options_, fit_, train_, val_).plan().metric, "other");
  fit_.metric = "mAP";
  Model m3 = model();
  try {
    Trainer t(m3, options_, fit_, train_, val_);
    FAIL() << "an unknown validator metric was accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("score, other"), std::string::npos) << e.what();
  }
}
