window.__arcaErrors = [];
window.addEventListener('error', function (ev) {
  var msg = (ev && ev.message) ? ev.message : String(ev);
  window.__arcaErrors.push(msg);
  var box = document.getElementById('js-errors');
  if (box) { box.textContent += msg + '\n'; }
});
