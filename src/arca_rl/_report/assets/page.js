(function () {
  'use strict';
  var body = document.body;
  var radios = document.querySelectorAll('input[name="mode"]');
  function setMode(m) { body.classList.toggle('mode-max', m === 'max'); }
  radios.forEach(function (r) {
    r.addEventListener('change', function () { if (r.checked) { setMode(r.value); } });
    if (r.checked) { setMode(r.value); }
  });
  // Hover a token: outline the same token position in every signal row of that completion.
  var lit = [];
  function clear() { lit.forEach(function (el) { el.classList.remove('hl'); }); lit = []; }
  document.addEventListener('mouseover', function (ev) {
    var t = ev.target.closest ? ev.target.closest('.t') : null;
    if (!t) { return; }
    clear();
    var card = t.closest('.card');
    if (!card) { return; }
    lit = Array.prototype.slice.call(card.querySelectorAll('.t[data-i="' + t.getAttribute('data-i') + '"]'));
    lit.forEach(function (el) { el.classList.add('hl'); });
  });
  document.addEventListener('mouseleave', clear);
  var ok = document.getElementById('js-status');
  if (ok) { ok.setAttribute('data-status', 'ok'); }
})();
