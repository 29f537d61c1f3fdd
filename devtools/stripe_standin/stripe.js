/*
 * Stripe.js v3 as the stand-in serves it at /js.stripe.com/v3/: the calls a page makes to
 * save a card and pay, against this stand-in, the way Stripe.js makes them against
 * api.stripe.com (form-encoded, the publishable key as the `key` parameter, the intent's
 * client secret beside it). The card Element is plain inputs in the page rather than
 * Stripe's iframe; 3-D Secure is a modal whose buttons pass or fail the challenge.
 *
 * Covered: Stripe(key), elements().create("card"), element.mount/on/clear/destroy,
 * createPaymentMethod, confirmCardSetup, confirmCardPayment, handleCardAction,
 * retrieveSetupIntent, retrievePaymentIntent. Results are `{setupIntent}`,
 * `{paymentIntent}`, `{paymentMethod}` or `{error}`, never a thrown error.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var BASE = script.src.replace(/\/js\.stripe\.com\/v3\/?(\?.*)?$/, "");

  function flatten(value, prefix, out) {
    if (value === undefined || value === null) return out;
    if (typeof value === "object") {
      Object.keys(value).forEach(function (k) {
        flatten(value[k], prefix ? prefix + "[" + k + "]" : k, out);
      });
    } else {
      out.append(prefix, String(value));
    }
    return out;
  }

  async function call(key, method, path, params) {
    var body = flatten(Object.assign({}, params, { key: key }), "", new URLSearchParams());
    var url = BASE + path + (method === "GET" ? "?" + body.toString() : "");
    var answer;
    try {
      answer = await fetch(url, {
        method: method,
        headers: method === "GET" ? {} : { "Content-Type": "application/x-www-form-urlencoded" },
        body: method === "GET" ? undefined : body,
      });
    } catch (e) {
      throw { type: "api_connection_error", message: "Could not reach Stripe: " + e };
    }
    var json = await answer.json().catch(function () { return {}; });
    if (!answer.ok || json.error) {
      throw json.error || { type: "api_error", message: "Stripe answered " + answer.status };
    }
    return json;
  }

  function intentOf(clientSecret) {
    var m = /^((pi|seti)_[A-Za-z0-9]+)_secret_/.exec(clientSecret || "");
    if (!m) throw { type: "invalid_request_error", message: "Invalid client secret." };
    return { id: m[1], path: m[2] === "pi" ? "/v1/payment_intents/" : "/v1/setup_intents/" };
  }

  // -- the card Element ----------------------------------------------------------------

  function CardElement() {
    this._handlers = {};
    this._root = null;
    this._inputs = null;
  }
  CardElement.prototype.mount = function (target) {
    var host = typeof target === "string" ? document.querySelector(target) : target;
    if (!host) throw new Error("Stripe stand-in: nothing to mount the card Element on.");
    var root = document.createElement("div");
    root.className = "StripeElement StripeElement--standin";
    root.style.display = "flex";
    root.style.gap = "6px";
    var self = this;
    this._inputs = {};
    [
      ["number", "Card number", "cc-number", "1 1 9em"],
      ["exp", "MM / YY", "cc-exp", "0 0 5.5em"],
      ["cvc", "CVC", "cc-csc", "0 0 4em"],
    ].forEach(function (spec) {
      var input = document.createElement("input");
      input.setAttribute("data-stripe", spec[0]);
      input.setAttribute("placeholder", spec[1]);
      input.setAttribute("autocomplete", spec[2]);
      input.setAttribute("inputmode", "numeric");
      input.setAttribute("aria-label", spec[1]);
      input.style.flex = spec[3];
      input.style.minWidth = "0";
      input.addEventListener("input", function () { self._emit("change", self._state()); });
      self._inputs[spec[0]] = input;
      root.appendChild(input);
    });
    host.appendChild(root);
    this._root = root;
    this._emit("ready", {});
  };
  CardElement.prototype._state = function () {
    var v = this._value();
    var complete = v.number.length >= 12 && v.exp_month > 0 && v.exp_year > 0 && v.cvc.length >= 3;
    return { elementType: "card", empty: !v.number && !v.cvc, complete: complete, error: undefined };
  };
  CardElement.prototype._value = function () {
    var i = this._inputs || {};
    var exp = ((i.exp && i.exp.value) || "").split(/\s*\/\s*|\s+/);
    return {
      number: ((i.number && i.number.value) || "").replace(/\s+/g, ""),
      exp_month: parseInt(exp[0], 10) || 0,
      exp_year: parseInt(exp[1], 10) || 0,
      cvc: ((i.cvc && i.cvc.value) || "").trim(),
    };
  };
  CardElement.prototype.on = function (event, handler) {
    (this._handlers[event] = this._handlers[event] || []).push(handler);
    return this;
  };
  CardElement.prototype._emit = function (event, payload) {
    (this._handlers[event] || []).forEach(function (h) { h(payload); });
  };
  CardElement.prototype.clear = function () {
    Object.values(this._inputs || {}).forEach(function (i) { i.value = ""; });
  };
  CardElement.prototype.focus = function () {
    if (this._inputs) this._inputs.number.focus();
  };
  CardElement.prototype.unmount = function () {
    if (this._root) this._root.remove();
    this._root = null;
  };
  CardElement.prototype.destroy = CardElement.prototype.unmount;

  // -- 3-D Secure ----------------------------------------------------------------------

  function challenge(url) {
    return new Promise(function (resolve) {
      var veil = document.createElement("div");
      veil.id = "__stripe-3ds";
      veil.setAttribute("role", "dialog");
      veil.setAttribute("aria-label", "3-D Secure");
      veil.style.cssText =
        "position:fixed;inset:0;background:rgba(0,0,0,.45);display:flex;" +
        "align-items:center;justify-content:center;z-index:2147483647;font:15px sans-serif";
      var box = document.createElement("div");
      box.style.cssText = "background:#fff;padding:20px 24px;border-radius:8px;max-width:320px";
      box.innerHTML =
        "<p><b>3-D Secure</b> (Stripe stand-in)</p><p>Your bank asks you to confirm this card.</p>";
      [["complete", "Complete authentication", false], ["fail", "Fail authentication", true]]
        .forEach(function (b) {
          var button = document.createElement("button");
          button.id = "__stripe-3ds-" + b[0];
          button.textContent = b[1];
          button.style.margin = "4px";
          button.addEventListener("click", async function () {
            veil.remove();
            // the bank's page: opening it passes (or with ?fail=1 fails) the challenge
            await fetch(url + (b[2] ? "?fail=1" : ""), { mode: "no-cors" }).catch(function () {});
            resolve(!b[2]);
          });
          box.appendChild(button);
        });
      veil.appendChild(box);
      document.body.appendChild(veil);
    });
  }

  async function settle(key, clientSecret, intent) {
    if (intent.status !== "requires_action" || !intent.next_action) return intent;
    var sdk = intent.next_action.use_stripe_sdk || {};
    var redirect = intent.next_action.redirect_to_url || {};
    await challenge(sdk.stripe_js || redirect.url);
    var target = intentOf(clientSecret);
    return call(key, "GET", target.path + target.id, { client_secret: clientSecret });
  }

  function outcome(kind, intent) {
    var error = intent.last_payment_error || intent.last_setup_error;
    if (intent.status === "requires_payment_method" && error) {
      var e = Object.assign({}, error);
      e[kind] = intent;
      return { error: e };
    }
    if (intent.status === "requires_payment_method" || intent.status === "requires_action") {
      var failed = { type: "invalid_request_error", code: "payment_intent_authentication_failure",
        message: "We are unable to authenticate your payment method." };
      failed[kind] = intent;
      return { error: failed };
    }
    var ok = {};
    ok[kind] = intent;
    return ok;
  }

  function caught(e) {
    return { error: e && e.message ? e : { type: "api_error", message: String(e) } };
  }

  // -- Stripe(key) ---------------------------------------------------------------------

  window.Stripe = function (key) {
    if (!/^pk_(test|live)_/.test(key || "")) {
      throw new Error("Stripe stand-in: a publishable key (pk_test_...) is needed.");
    }
    var card = null;

    function createCard(element, details) {
      return call(key, "POST", "/v1/payment_methods", {
        type: "card",
        card: element._value(),
        billing_details: details,
      });
    }

    async function paymentMethodOf(pm) {
      if (typeof pm === "string") return pm;
      if (pm && pm.card instanceof CardElement) return (await createCard(pm.card, pm.billing_details)).id;
      return undefined;
    }

    async function confirm(kind, clientSecret, data) {
      try {
        var target = intentOf(clientSecret);
        var pm = await paymentMethodOf((data || {}).payment_method);
        var intent = await call(key, "POST", target.path + target.id + "/confirm", {
          client_secret: clientSecret,
          payment_method: pm,
          use_stripe_sdk: true,
        });
        return outcome(kind, await settle(key, clientSecret, intent));
      } catch (e) {
        return caught(e);
      }
    }

    async function retrieve(kind, clientSecret) {
      try {
        var target = intentOf(clientSecret);
        var result = {};
        result[kind] = await call(key, "GET", target.path + target.id, { client_secret: clientSecret });
        return result;
      } catch (e) {
        return caught(e);
      }
    }

    return {
      elements: function () {
        return {
          create: function (type) {
            if (type !== "card") throw new Error("Stripe stand-in: only the card Element.");
            if (card) throw new Error("Can only create one Element of type card.");
            card = new CardElement();
            return card;
          },
          getElement: function () { return card; },
        };
      },
      createPaymentMethod: async function (data) {
        try {
          return { paymentMethod: await createCard(data.card || data.element, data.billing_details) };
        } catch (e) {
          return caught(e);
        }
      },
      confirmCardSetup: function (clientSecret, data) {
        return confirm("setupIntent", clientSecret, data);
      },
      confirmCardPayment: async function (clientSecret, data) {
        var current = await retrieve("paymentIntent", clientSecret);
        if (current.paymentIntent && current.paymentIntent.status === "requires_action") {
          return outcome("paymentIntent", await settle(key, clientSecret, current.paymentIntent));
        }
        return confirm("paymentIntent", clientSecret, data);
      },
      handleCardAction: async function (clientSecret) {
        try {
          var current = await retrieve("paymentIntent", clientSecret);
          if (current.error) return current;
          return outcome("paymentIntent", await settle(key, clientSecret, current.paymentIntent));
        } catch (e) {
          return caught(e);
        }
      },
      retrieveSetupIntent: function (clientSecret) { return retrieve("setupIntent", clientSecret); },
      retrievePaymentIntent: function (clientSecret) { return retrieve("paymentIntent", clientSecret); },
    };
  };
  window.Stripe.version = 3;
  window.Stripe.standin = BASE;
})();
