// The definition page: the stored spec drawn with the editor's layout and the shared graph renderer.

import { Viewport, renderGraph, svgDefs } from "./graph.js";
import { layeredLayout } from "./layout.js";

const spec = JSON.parse(document.getElementById("definition-spec").textContent);
const page = document.getElementById("definition");
const svg = page.querySelector("svg.graph");
svg.innerHTML = svgDefs() + '<g class="viewport"><g class="edges-nodes"></g></g>';
const nodes = spec.nodes || {};
const layout = layeredLayout(nodes, spec.start);
renderGraph(svg.querySelector(".edges-nodes"), { nodes, start: spec.start, layout });
const viewport = new Viewport(svg);
viewport.fit(layout);
page.querySelector("[data-action=fit]").addEventListener("click", () => viewport.fit(layout));
page.dataset.ready = "true";
