// Typeset the formulas that pymdownx.arithmatex (generic mode) leaves as \( \) and \[ \] in
// <span|div class="arithmatex">, with the KaTeX copy served by this site (docs/assets/katex).
function datamarketTypeset(root) {
  for (const el of root.querySelectorAll(".arithmatex")) {
    renderMathInElement(el, {
      delimiters: [
        { left: "\\(", right: "\\)", display: false },
        { left: "\\[", right: "\\]", display: true },
      ],
      throwOnError: false,
    });
  }
}
if (typeof document$ !== "undefined") {
  document$.subscribe(({ body }) => datamarketTypeset(body));  // Material's page observable
} else {
  document.addEventListener("DOMContentLoaded", () => datamarketTypeset(document.body));
}
