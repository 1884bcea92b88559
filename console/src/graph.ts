/// <reference lib="dom" />
/** Pipeline graphs as SVG: Graphviz compiled to WebAssembly, loaded on first use (it is large). */
import type { Viz } from "@viz-js/viz";

let viz: Promise<Viz> | null = null;

export function renderDot(dot: string): Promise<SVGSVGElement> {
  viz ??= import("@viz-js/viz").then((module) => module.instance());
  return viz.then((instance) => instance.renderSVGElement(dot));
}
