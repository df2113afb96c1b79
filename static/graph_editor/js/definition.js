// The definition page: the stored spec drawn with the editor's layout and the shared graph renderer,
// in the direction and with the hand-placed nodes the editor saved.

import { GraphFrame } from "./graph.js";

const spec = JSON.parse(document.getElementById("definition-spec").textContent);
const editor = JSON.parse(document.getElementById("definition-editor").textContent);
const page = document.getElementById("definition");
const frame = new GraphFrame(page.querySelector("svg.graph"), { fitButton: page.querySelector("[data-action=fit]"), editor });
frame.draw({ nodes: spec.nodes || {}, start: spec.start });
frame.fit(0.45);
page.dataset.ready = "true";
