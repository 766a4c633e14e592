// Vid4D frontend extension: shows the text a Vid4D node reports after it runs (`ui.vid4d_info`:
// frame counts, which method ran, error summaries) in a read-only box on the node.
import { app } from "../../scripts/app.js";
import { ComfyWidgets } from "../../scripts/widgets.js";

const INFO = "vid4d_info";

function showInfo(node, text) {
  let widget = node.widgets?.find((w) => w.name === INFO);
  if (!widget) {
    widget = ComfyWidgets.STRING(node, INFO, ["STRING", { multiline: true }], app).widget;
    // Never saved: widgets_values are positional, an extra value would shift every later one.
    widget.serialize = false;
    if (widget.inputEl) {
      widget.inputEl.readOnly = true;
      widget.inputEl.style.opacity = 0.75;
    }
  }
  widget.value = text;
  const size = node.computeSize();
  node.setSize([Math.max(node.size[0], size[0]), Math.max(node.size[1], size[1])]);
  node.graph?.setDirtyCanvas(true, true);
}

app.registerExtension({
  name: "vid4d.nodeInfo",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!nodeData?.category?.startsWith("Vid4D")) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const lines = message?.[INFO];
      if (Array.isArray(lines) && lines.length) showInfo(this, lines.join("\n"));
    };
  },
});
