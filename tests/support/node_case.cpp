#include "tests/support/node_case.h"

#include "onnxtrain/onnxtrain.h"

namespace onnxtrain::test {

namespace {

// The name of a typed declaration "float[3, 2] X": its last word.
std::string declared_name(const std::string& decl) {
  const size_t space = decl.find_last_of(' ');
  return space == std::string::npos ? decl : decl.substr(space + 1);
}

std::string joined(const std::vector<std::string>& parts, bool names_only) {
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : ", ") + (names_only ? declared_name(p) : p);
  return out;
}

}  // namespace

std::string model_header(int opset, const std::map<std::string, int>& domains) {
  std::string text = "<ir_version: 8, opset_import: [\"\" : " + std::to_string(opset);
  for (const auto& [domain, version] : domains) text += ", \"" + domain + "\" : " + std::to_string(version);
  return text + "]>\n";
}

std::string graph_model(const std::string& body, const std::string& inputs, const std::string& outputs, int opset) {
  return model_header(opset) + "g (" + inputs + ") => (" + outputs + ") { " + body + " }";
}

std::string NodeCase::text() const {
  return model_header(opset, domains) + "g (" + joined(inputs, false) + ") => (" + joined(outputs, false) + ") { " +
         joined(outputs, true) + " = " + op + (attrs.empty() ? "" : " <" + attrs + ">") + " (" + joined(inputs, true) +
         ") }";
}

std::map<std::string, Tensor> run_model(const std::string& text, const std::map<std::string, Tensor>& feeds) {
  Model model = Model::from_text(text);
  InferenceSession session(model);
  return session.run(feeds);
}

std::map<std::string, Tensor> run_node_case(const NodeCase& c, const std::map<std::string, Tensor>& feeds) {
  return run_model(c.text(), feeds);
}

std::string run_error(const std::string& text, const std::map<std::string, Tensor>& feeds) {
  try {
    run_model(text, feeds);
  } catch (const Error& e) {
    return e.what();
  }
  return {};
}

void expect_error(const std::string& text, const std::map<std::string, Tensor>& feeds, const std::string& needle) {
  const std::string message = run_error(text, feeds);
  if (message.empty()) ADD_FAILURE() << "expected an error containing '" << needle << "'";
  else EXPECT_CONTAINS(message, needle);
}

}  // namespace onnxtrain::test
