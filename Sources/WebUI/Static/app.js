// The pages work without this file; it adds copy buttons and filters the catalogue as one types.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button.copy")) {
    button.hidden = false;
    button.addEventListener("click", async () => {
      const text = button.dataset.copy;
      try {
        await navigator.clipboard.writeText(text);
      } catch {
        // Without a secure context the Clipboard API is missing: copy through a selection instead.
        const area = document.createElement("textarea");
        area.value = text;
        document.body.appendChild(area);
        area.select();
        document.execCommand("copy");
        area.remove();
      }
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = "Copy"; }, 1500);
    });
  }
  const filter = document.getElementById("filter");
  const rows = document.querySelectorAll("#catalogue tbody tr");
  if (filter && rows.length) {
    filter.addEventListener("input", () => {
      const wanted = filter.value.trim().toLowerCase();
      for (const row of rows) row.hidden = wanted !== "" && !row.dataset.name.toLowerCase().includes(wanted);
    });
  }
});
