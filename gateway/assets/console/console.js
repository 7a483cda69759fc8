// The console's one script: checks an ID number's GB 11643 check digit as it is
// typed (the server checks it again), and makes the print buttons print. Every
// page works without it.
"use strict";

(function () {
  var WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  var CHECK = "10X98765432";

  function checkDigitOk(id) {
    if (!/^[0-9]{17}[0-9Xx]$/.test(id)) {
      return false;
    }
    var sum = 0;
    for (var i = 0; i < 17; i++) {
      sum += (id.charCodeAt(i) - 48) * WEIGHTS[i];
    }
    return CHECK.charAt(sum % 11) === id.charAt(17).toUpperCase();
  }

  function watch(input) {
    var out = document.getElementById(input.id + "-check");
    function update() {
      var value = input.value.trim();
      var message = "";
      if (value.length > 0 && value.length < 18) {
        message = out ? out.getAttribute("data-short") : "";
      } else if (value.length === 18 && !checkDigitOk(value)) {
        message = out ? out.getAttribute("data-bad") : "";
      }
      input.setCustomValidity(message);
      if (message) {
        input.setAttribute("aria-invalid", "true");
      } else {
        input.removeAttribute("aria-invalid");
      }
      if (out) {
        out.textContent = value.length >= 18 || message === "" ? message : "";
      }
    }
    input.addEventListener("input", update);
    input.addEventListener("blur", function () {
      var value = input.value.trim();
      if (out && value.length > 0 && value.length < 18) {
        out.textContent = out.getAttribute("data-short");
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var inputs = document.querySelectorAll("input[data-id-number]");
    for (var i = 0; i < inputs.length; i++) {
      watch(inputs[i]);
    }
    var printers = document.querySelectorAll("[data-print]");
    for (var j = 0; j < printers.length; j++) {
      printers[j].addEventListener("click", function () {
        window.print();
      });
    }
  });
})();
