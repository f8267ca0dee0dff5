#include "tests/support/node_case.h"

#include "onnxtrain/onnxtrain.h"

namespace onnxtrain::test {

namespace {

// The name of a typed declaration "float[3, 2] X": its last word.
std::string declared_name(const std::string& decl) {
  const size_t space = decl.find_last_of(' ');
  return space == std::string::npos ? decl : decl.substr(space + 1);
}

// The graph's declarations skip empty entries; the node's argument list keeps them as empty
// positions (absent optional inputs or outputs), trailing ones dropped.
std::string declarations(const std::vector<std::string>& parts) {
  std::string out;
  for (const std::string& p : parts)
    if (!p.empty()) out += (out.empty() ? "" : ", ") + p;
  return out;
}

std::string arguments(const std::vector<std::string>& parts) {
  size_t end = parts.size();
  while (end > 0 && parts[end - 1].empty()) --end;
  std::string out;
  for (size_t i = 0; i < end; ++i) out += (i ? ", " : "") + (parts[i].empty() ? "" : declared_name(parts[i]));
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
  return model_header(opset, domains) + "g (" + declarations(inputs) + ") => (" + declarations(outputs) + ") { " +
         arguments(outputs) + " = " + op + (attrs.empty() ? "" : " <" + attrs + ">") + " (" + arguments(inputs) +
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
