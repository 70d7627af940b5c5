// The ten-second reveal of a new API token (and of a webhook secret): count down, offer a copy button, then remove
// the value from the page and move on to the token list (replacing this history entry,
// so Back never comes here again). Without script, the page's meta refresh moves on too.
(function () {
  "use strict";
  var reveal = document.getElementById("reveal");
  var value = document.getElementById("token-value");
  var counter = document.getElementById("countdown");
  var unit = document.getElementById("countdown-unit");
  var copyButton = document.getElementById("copy-token");
  var copyStatus = document.getElementById("copy-status");
  if (!reveal || !value) return;

  var remaining = parseInt(reveal.dataset.seconds, 10) || 10;
  var next = reveal.dataset.next;

  // Hidden in the markup: without script it could only be a button that does nothing.
  copyButton.hidden = false;

  copyButton.addEventListener("click", function () {
    if (!navigator.clipboard) {
      copyStatus.textContent = "Select the token and copy it by hand.";
      return;
    }
    navigator.clipboard.writeText(value.textContent).then(
      function () { copyStatus.textContent = "Copied to the clipboard."; },
      function () { copyStatus.textContent = "Copy failed: select the token and copy it by hand."; }
    );
  });

  function hide() {
    value.textContent = "";
    value.remove();
    copyButton.remove();
    // The page may say what is hidden (a webhook secret's reveal does); a token's says nothing.
    reveal.querySelector(".warning").textContent = reveal.dataset.hidden ||
      "The token is hidden now. Only its description and tier remain visible.";
    window.location.replace(next);
  }

  var timer = window.setInterval(function () {
    remaining -= 1;
    counter.textContent = String(Math.max(remaining, 0));
    unit.textContent = remaining === 1 ? "second" : "seconds";
    if (remaining <= 0) {
      window.clearInterval(timer);
      hide();
    }
  }, 1000);
})();
