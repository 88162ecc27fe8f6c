// Lists whose cells are cut short (console.css): a cell cut with an ellipsis
// gets its whole text as its title, shown on hover; a details cell's text goes
// in a .cell-clamp box, which shows two lines of it at most. Served from
// 'self': the content security policy allows no inline script.
document.addEventListener("DOMContentLoaded", () => {
  for (const cell of document.querySelectorAll("#result_list td.field-details_shown")) {
    if (cell.querySelector(".cell-clamp")) continue;
    const box = document.createElement("div");
    box.className = "cell-clamp";
    box.append(...cell.childNodes);
    cell.append(box);
  }
  for (const cell of document.querySelectorAll("[data-cell-titles] td, #result_list td, #result_list th")) {
    if (cell.title || !cell.textContent.trim()) continue;
    const clamp = cell.querySelector(".cell-clamp") || cell;
    if (clamp.scrollWidth > clamp.clientWidth || clamp.scrollHeight > clamp.clientHeight + 1) {
      cell.title = cell.textContent.trim().replace(/\s+/g, " ");
    }
  }
});
