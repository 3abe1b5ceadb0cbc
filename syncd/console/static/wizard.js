// The wizard's rules editor: each rule shown as a sentence while it is built (no inline scripts).
"use strict";
(function () {
  function value(rule, name) {
    var el = rule.querySelector('[name$="' + name + '"]');
    return el ? el.value : "";
  }
  function sentence(rule) {
    var i = rule.getAttribute("data-rule");
    var p = "r" + i + ".";
    var conds = [];
    for (var j = 0; j < 3; j++) {
      var field = value(rule, p + "c" + j + ".field");
      if (!field) continue;
      var op = value(rule, p + "c" + j + ".op");
      var text = field + " " + op.replace(/_/g, " ");
      if (op !== "is_set" && op !== "is_empty") text += ' "' + value(rule, p + "c" + j + ".value") + '"';
      conds.push(text);
    }
    var acts = [];
    for (var k = 0; k < 2; k++) {
      var kind = value(rule, p + "t" + k + ".kind");
      var v = value(rule, p + "t" + k + ".value");
      if (!kind) continue;
      if (kind === "set") acts.push("set " + value(rule, p + "t" + k + ".field") + ' to "' + v + '"');
      else if (v) acts.push(kind.replace(/_/g, " ") + ' "' + v + '"');
    }
    var out = rule.querySelector("[data-sentence]");
    if (!out) return;
    if (!conds.length && !acts.length) { out.textContent = ""; return; }
    var joiner = value(rule, p + "match") === "any" ? " or " : " and ";
    var ab = value(rule, p + "direction") === "a-to-b";
    var a = out.getAttribute("data-a"), b = out.getAttribute("data-b");
    out.textContent = "IF " + (conds.join(joiner) || "always") + " THEN " + (acts.join(", ") || "nothing") +
      " (" + (ab ? a + " → " + b : b + " → " + a) + ")";
  }
  document.addEventListener("DOMContentLoaded", function () {
    var rules = document.querySelectorAll("[data-rule]");
    rules.forEach(function (rule) {
      rule.addEventListener("input", function () { sentence(rule); });
      rule.addEventListener("change", function () { sentence(rule); });
    });
  });
})();
