// Tether playground: plain JS, no dependencies, talks only to the gateway that served it.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const el = {
    feature: $("feature"), target: $("target"), tone: $("tone"), form: $("form"),
    toneField: $("tone-field"), formField: $("form-field"), wordingField: $("wording-field"), keepWording: $("keep-wording"), input: $("input"), inputLabel: $("input-label"),
    run: $("run"), stop: $("stop"), status: $("status"), spinner: $("spinner"), result: $("result"),
    emojiImage: $("emoji-image"), preview: $("preview"), previewState: $("preview-state"), recent: $("recent"),
    modal: $("consent-modal"), consentTitle: $("consent-title"), consentWhere: $("consent-where"),
    consentPreview: $("consent-preview"), consentEntities: $("consent-entities"),
    allow: $("consent-allow"), refuse: $("consent-refuse"),
    route: {
      tier: $("route-tier"), rule: $("route-rule"), reason: $("route-reason"),
      degraded: $("route-degraded"), escalated: $("route-escalated"), values: $("route-values"),
      notes: $("route-notes"),
    },
  };

  const FEATURE_PATHS = {
    notifications: "/v1/notifications/summarize",
    proofread: "/v1/writing/proofread",
    rewrite: "/v1/writing/rewrite",
    summarize: "/v1/writing/summarize",
    replies: "/v1/replies",
    emoji: "/v1/emoji",
    ask: "/v1/ask",
  };
  const TIER_LABEL = { device: "device", private_cloud: "private cloud", third_party: "third party" };
  const SCAN_DEBOUNCE_MS = 350;
  const RECENT_EVERY_MS = 3000;
  const CHAT_MAX_TOKENS = 256; // a playground answer; small device models otherwise run to the gateway's cap

  let controller = null; // AbortController of the running request
  let running = false; // one request at a time: Run, Ctrl+Enter and the consent dialog all check it
  let lastScan = null; // {text, report}
  // Which tiers a request can reach ({device, private_cloud, third_party}: booleans), from /healthz on
  // load and from every scan; null while unknown. A tier that is off is never asked about.
  let configured = null;
  let preference = null; // the router config's; "device-only" turns every cloud tier off

  // ------------------------------------------------------------------ helpers

  function setStatus(text, isError) {
    el.status.textContent = text || "";
    el.status.classList.toggle("error", !!isError);
  }

  function busy(on) {
    el.spinner.hidden = !on;
    el.run.disabled = on;
    el.stop.hidden = !on;
  }

  function tierKey(t) { return String(t || "").replace("-", "_"); }

  function pill(tier) {
    const s = document.createElement("span");
    const key = tierKey(tier) || "none";
    s.className = "pill " + key;
    s.textContent = TIER_LABEL[key] || tier || "?";
    s.dataset.tier = key;
    return s;
  }

  // Show a redacted text with its placeholders (<PERSON_1>, [EMAIL_1], …) highlighted; text only, never HTML.
  function renderPayload(node, text) {
    node.textContent = "";
    const re = /(<[A-Z][A-Z0-9_]*>|\[[A-Z][A-Z0-9_]*\])/g;
    let last = 0, m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) node.appendChild(document.createTextNode(text.slice(last, m.index)));
      const ph = document.createElement("span");
      ph.className = "ph";
      ph.textContent = m[0];
      node.appendChild(ph);
      last = m.index + m[0].length;
    }
    if (last < text.length) node.appendChild(document.createTextNode(text.slice(last)));
  }

  async function errorMessage(resp) {
    let msg = resp.status + " " + resp.statusText, code = "";
    try {
      const body = await resp.json();
      const e = body && (body.error || body.detail || body);
      if (e && typeof e === "object") { msg = e.message || JSON.stringify(e); code = e.code || e.type || ""; }
      else if (e) { msg = String(e); }
    } catch (_) { /* not JSON */ }
    return { msg, code: String(code) };
  }

  // ------------------------------------------------------------------ routing info

  function clearRoute() {
    for (const k in el.route) el.route[k].textContent = "–";
  }

  function showRoute(info) {
    if (!info) return;
    const r = el.route;
    if (info.tier) { r.tier.textContent = ""; r.tier.appendChild(pill(info.tier)); }
    if (info.rule) r.rule.textContent = info.rule;
    if (info.reason) r.reason.textContent = info.reason;
    if (info.degraded !== undefined && info.degraded !== null) {
      r.degraded.textContent = info.degraded === true ? "yes (fell back to the device)" : "no";
    }
    if (info.escalated !== undefined && info.escalated !== null) {
      r.escalated.textContent = info.escalated === true ? "yes (the device answered first, then the cloud)" : "no";
    }
    if (info.values && typeof info.values === "object" && Object.keys(info.values).length) {
      r.values.textContent = Object.entries(info.values)
        .map(([k, v]) => k + "=" + (typeof v === "number" && !Number.isInteger(v) ? v.toFixed(3) : v)).join(", ");
    }
    if (Array.isArray(info.notes) && info.notes.length) r.notes.textContent = info.notes.join("; ");
  }

  function routeFromHeaders(resp) {
    const h = (n) => resp.headers.get(n);
    const info = {};
    if (h("X-Tether-Tier")) info.tier = h("X-Tether-Tier");
    if (h("X-Tether-Rule")) info.rule = h("X-Tether-Rule");
    if (h("X-Tether-Reason")) info.reason = h("X-Tether-Reason");
    return info;
  }

  // ------------------------------------------------------------------ results

  function resultText(feature, body) {
    if (body == null) return "";
    if (typeof body === "string") return body;
    const r = body.result && typeof body.result === "object" ? body.result : body;
    switch (feature) {
      case "notifications":
        if (Array.isArray(r.stacks)) {
          return r.stacks.map((s) => (s.time_sensitive ? "⚑ " : "") + s.app + (s.thread && s.thread !== s.app ? " · " + s.thread : "")
            + ": " + s.summary + (s.as_sent ? " (as sent)" : s.extractive ? " (extractive)" : "")
            + (s.tier && s.tier !== "device" ? "  [written on " + s.tier.replace("_", " ") + "]" : "")).join("\n")
            || "(no notifications)";
        }
        break;
      case "proofread":
        if (typeof r.corrected === "string") {
          const n = Array.isArray(r.edits) ? r.edits.length : 0;
          const u = Array.isArray(r.undone) ? r.undone.length : 0;
          const f = Array.isArray(r.flagged) ? r.flagged : [];
          return r.corrected + "\n\n— " + n + " edit" + (n === 1 ? "" : "s")
            + (u ? "; " + u + " rewording" + (u === 1 ? "" : "s") + " not applied: "
              + r.undone.map((e) => "“" + e.original + "” → “" + e.replacement + "”").join(", ") : "")
            + (f.length ? "\n— still looks wrong: " + f.map((x) => "“" + x.text + "” (" + x.why + ")").join(", ") : "")
            + (r.tier && r.tier !== "device" ? "\n[corrected on " + r.tier.replace("_", " ") + "]" : "");
        }
        break;
      case "rewrite":
        if (typeof r.text === "string") {
          const warn = [];
          if (Array.isArray(r.missing_numbers) && r.missing_numbers.length) warn.push("dropped " + r.missing_numbers.join(", "));
          if (Array.isArray(r.added_numbers) && r.added_numbers.length) warn.push("has " + r.added_numbers.join(", ") + ", which the text does not");
          if (Array.isArray(r.unfilled) && r.unfilled.length) warn.push("blanks to fill in: " + r.unfilled.join(", "));
          if (r.lost_question) warn.push("the text asks something and the rewrite asks nothing");
          if (r.cut) warn.push("the model ran long; cut at its last whole sentence");
          return r.text + (warn.length ? "\n\n— warning: " + warn.join("; ") : "");
        }
        break;
      case "emoji":
        if (Array.isArray(r.glyphs)) {
          return r.glyphs.map((g) => g.char).join("") + "  " + r.name + "\n"
            + r.glyphs.map((g) => g.char + " " + g.phrase + " (" + g.place + ")").join("\n")
            + (r.fallback ? "\n— made from the description's words" : "");
        }
        break;
      case "replies":
        if (Array.isArray(r.replies)) return r.replies.map((x) => "• " + (typeof x === "string" ? x : x.text)).join("\n");
        break;
      case "ask":
        if (typeof r.answer === "string") {
          const sources = Array.isArray(r.sources) ? r.sources : [];
          return r.answer + (sources.length ? "\n\nLooked in:\n" + sources.map((h, i) => "[" + (i + 1) + "] "
            + (h.title || "(untitled)") + " — " + h.path).join("\n") : "");
        }
        break;
      default:
        if (typeof r.text === "string") return r.text;
    }
    for (const k of ["text", "summary", "content", "corrected"]) if (typeof r[k] === "string") return r[k];
    if (r.choices && r.choices[0] && r.choices[0].message) return r.choices[0].message.content;
    return JSON.stringify(r, null, 2);
  }

  // ------------------------------------------------------------------ requests

  function parseNotifications(text) {
    const t = text.trim();
    if (t.startsWith("[") || t.startsWith("{")) {
      const data = JSON.parse(t);
      return Array.isArray(data) ? data : (data.notifications || []);
    }
    const now = Date.now();
    const lines = t.split("\n").map((l) => l.trim()).filter(Boolean);
    return lines.map((line, i) => {
      const parts = line.split(/:\s+/);
      const ts = new Date(now - (lines.length - i) * 60000).toISOString();
      if (parts.length >= 3) return { app: parts[0], sender: parts[1], body: parts.slice(2).join(": "), timestamp: ts };
      // a notification needs a title or a sender: without one, the app's name is the title
      if (parts.length === 2) return { app: parts[0], title: parts[0], body: parts[1], timestamp: ts };
      return { app: "Note", title: "Note", body: line, timestamp: ts };
    });
  }

  // Features run on the device model (the gateway's "model" field there names a catalog model, not a tier).
  function featureBody(feature, text) {
    const body = {};
    switch (feature) {
      case "notifications": body.notifications = parseNotifications(text); break;
      case "proofread": body.text = text; if (!el.keepWording.checked) body.keep_wording = false; break;
      case "rewrite": body.text = text; body.tone = el.tone.value; break;
      case "summarize": body.text = text; body.form = el.form.value; break;
      case "replies": body.message = text; break;
      case "ask": body.question = text; break;
      // by code points, as the server counts: slicing UTF-16 units could split an emoji in two
      case "emoji": body.description = Array.from(text).slice(0, 300).join(""); break;
      default: body.text = text;
    }
    return body;
  }

  function headersFor(consent) {
    const h = { "Content-Type": "application/json" };
    if (consent) h["X-Tether-Consent"] = "yes";
    return h;
  }

  async function runChat(text, target, consent) {
    const resp = await fetch("/v1/chat/completions", {
      method: "POST", headers: headersFor(consent), signal: controller.signal,
      body: JSON.stringify({ model: target, stream: true, max_tokens: CHAT_MAX_TOKENS,
        messages: [{ role: "user", content: text }] }),
    });
    if (!resp.ok) return { error: await errorMessage(resp) };
    showRoute(routeFromHeaders(resp));
    const ctype = resp.headers.get("Content-Type") || "";
    if (!ctype.includes("text/event-stream")) { // a server that answered without streaming
      const body = await resp.json();
      showRoute(body.tether);
      el.result.textContent = resultText("chat", body);
      return {};
    }
    el.result.textContent = "";
    return readEvents(resp, (chunk) => {
      if (chunk.tether) showRoute(chunk.tether);
      const delta = chunk.choices && chunk.choices[0] && (chunk.choices[0].delta || {}).content;
      if (delta) el.result.textContent += delta;
    });
  }

  // Server-sent events: each "data:" line's JSON to onEvent until [DONE]; an error event ends it.
  async function readEvents(resp, onEvent) {
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, "");
        buf = buf.slice(nl + 1);
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return {};
        let chunk;
        try { chunk = JSON.parse(data); } catch (_) { continue; }
        if (chunk.error) return { error: { msg: chunk.error.message || String(chunk.error), code: chunk.error.code || "" } };
        onEvent(chunk);
      }
    }
    return {};
  }

  function showDraft(text) {
    el.result.classList.add("draft");
    el.result.textContent = text;
  }

  // A feature streams the device's drafts (shown dimmed, as "draft") while its checks decide; the
  // result that replaces them is the checked one, which may differ (a retry, the private cloud).
  async function runFeature(feature, text, target, consent) {
    const streamed = feature !== "emoji";
    const resp = await fetch(FEATURE_PATHS[feature], {
      method: "POST", headers: headersFor(consent), signal: controller.signal,
      body: JSON.stringify({ ...featureBody(feature, text), ...(streamed ? { stream: true } : {}) }),
    });
    if (!resp.ok) return { error: await errorMessage(resp) };
    showRoute(routeFromHeaders(resp));
    let body = null;
    if ((resp.headers.get("Content-Type") || "").includes("text/event-stream")) {
      let drafts = 0;
      let draft = "";
      const ended = await readEvents(resp, (event) => {
        if (event.draft_reset) {
          drafts += 1;
          draft = "";
          setStatus(drafts > 1 ? `Writing on the device (draft ${drafts})…` : "Writing on the device…");
        } else if (typeof event.draft === "string") {
          draft += event.draft;
          showDraft(draft);
        } else {
          body = event;
        }
      });
      el.result.classList.remove("draft");
      if (ended.error) return ended;
      if (!body) return { error: { msg: "the gateway ended the stream without a result", code: "" } };
    } else {
      body = await resp.json();
    }
    if (body && body.tether) showRoute(body.tether);
    el.result.textContent = resultText(feature, body);
    if (feature === "emoji" && body && typeof body.png_base64 === "string") {
      el.emojiImage.src = "data:image/png;base64," + body.png_base64;
      el.emojiImage.alt = body.name || "emoji";
      el.emojiImage.hidden = false;
    }
    return {};
  }

  async function scan(text) {
    if (lastScan && lastScan.text === text) return lastScan.report;
    const resp = await fetch("/v1/privacy/scan", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ text }),
    });
    if (!resp.ok) throw new Error((await errorMessage(resp)).msg);
    const report = await resp.json();
    lastScan = { text, report };
    if (report && report.tiers_configured) setConfigured(report.tiers_configured, report.preference);
    return report;
  }

  // ------------------------------------------------------------------ configured tiers

  const TARGET_TIER = { "private-cloud": "private_cloud", "third-party": "third_party" };
  const NOT_CONFIGURED = {
    private_cloud: "No private cloud is configured",
    third_party: "No third-party model is configured",
  };
  const NOT_IN_PREVIEW = { private_cloud: "no private cloud is configured", third_party: "no third party is configured" };

  function isConfigured(tier) { return !configured || configured[tier] !== false; }
  function deviceOnly() { return preference === "device-only"; }
  // Why a tier is off: the config names none, or it says device-only.
  function offReason(tier) { return deviceOnly() ? "Your router config says device-only" : NOT_CONFIGURED[tier]; }

  function setConfigured(tiers, pref) {
    if (!tiers || typeof tiers !== "object") return;
    configured = tiers;
    if (typeof pref === "string") preference = pref;
    for (const opt of el.target.options) {
      const tier = TARGET_TIER[opt.value];
      if (!tier) continue;
      if (!opt.dataset.label) opt.dataset.label = opt.textContent;
      const missing = !isConfigured(tier);
      opt.textContent = missing ? TIER_LABEL[tier] + (deviceOnly() ? " (off: device-only)" : " (not configured)")
        : opt.dataset.label;
      opt.title = !missing ? "" : deviceOnly() ? offReason(tier) + ": every request runs on this device"
        : NOT_CONFIGURED[tier] + " in the router config: a request runs where it can (auto)";
    }
  }

  async function loadConfigured() {
    try {
      const resp = await fetch("/healthz", { cache: "no-store" });
      if (resp.ok) { const health = await resp.json(); setConfigured(health.tiers_configured, health.preference); }
    } catch (_) { /* learnt from the next scan instead */ }
  }

  // ------------------------------------------------------------------ consent

  let consentResolve = null;

  const CONSENT_WHERE = {
    third_party: ["Send to a third party?", "a third party, outside your device and your private cloud"],
    private_cloud: ["Send to your private cloud?", "your private cloud (your policy asks before using it)"],
  };

  // The rest of the page is inert while the dialog is open: focus and keys stay in the dialog.
  function setPageInert(on) {
    for (const node of document.body.children) if (node !== el.modal) node.inert = on;
  }

  function askConsent(outbound, tier) {
    const [title, where] = CONSENT_WHERE[tier] || CONSENT_WHERE.third_party;
    el.consentTitle.textContent = title;
    el.consentWhere.textContent = where;
    el.consentEntities.textContent = "";
    if (!outbound) {
      el.consentPreview.textContent = "(the redaction preview is unavailable)";
    } else if (outbound.payload == null) {
      el.consentPreview.textContent = "Nothing: the privacy policy keeps this text on the device ("
        + (outbound.stay_reasons || []).join(", ") + ").";
    } else {
      renderPayload(el.consentPreview, outbound.payload);
      const ents = (outbound.entities || []).map((e) => e.entity_type + " ×" + e.count + " → " + e.action);
      if (ents.length) el.consentEntities.textContent = "Found: " + ents.join(", ");
    }
    el.modal.hidden = false;
    setPageInert(true);
    el.allow.focus();
    return new Promise((resolve) => { consentResolve = resolve; });
  }

  function answerConsent(yes) {
    el.modal.hidden = true;
    setPageInert(false);
    const r = consentResolve;
    consentResolve = null;
    if (r) r(yes);
  }

  el.allow.addEventListener("click", () => answerConsent(true));
  el.refuse.addEventListener("click", () => answerConsent(false));
  document.addEventListener("keydown", (e) => {
    if (el.modal.hidden) return;
    if (e.key === "Escape") answerConsent(false);
    if (e.key === "Tab") { // Tab and Shift+Tab cycle between Allow and Refuse
      e.preventDefault();
      (document.activeElement === el.allow ? el.refuse : el.allow).focus();
    }
  });

  async function outboundFor(text, tier) {
    try {
      const report = await scan(text);
      return (report.tiers || []).find((t) => t.tier === tier) || null;
    } catch (_) {
      return null;
    }
  }

  // ------------------------------------------------------------------ run

  async function run() {
    if (running || !el.modal.hidden) return; // a second Run (or Ctrl+Enter) while one is under way
    running = true;
    try {
      await runOnce();
    } finally {
      running = false;
    }
  }

  async function runOnce() {
    const feature = el.feature.value;
    const target = feature === "chat" ? el.target.value : "device";
    const text = el.input.value;
    if (!text.trim()) { setStatus("Type or paste something first.", true); return; }
    el.result.textContent = "";
    el.result.classList.remove("draft");
    el.emojiImage.hidden = true;
    el.emojiImage.removeAttribute("src");
    clearRoute();
    let consent = false;
    let runTarget = target;
    let missing = null; // the tier asked for, when it is off (offReason): nothing is asked, it runs on auto
    const wanted = TARGET_TIER[target];
    let outbound = null;
    if (wanted) {
      setStatus("Checking what would leave the device…");
      if (wanted === "third_party") outbound = await outboundFor(text, wanted); // the scan also says what is configured
      else if (!configured) await outboundFor(text, wanted);
      if (!isConfigured(wanted)) { missing = wanted; runTarget = "auto"; }
    }
    if (target === "third-party" && !missing) {
      setStatus("Asking before anything leaves the device…");
      if (lastScan && lastScan.text === text && lastScan.report.consent_policy === "never") {
        // no Allow could change it: the gateway would refuse the request whatever the answer
        setStatus("Refused by your saved policy (consent = \"never\"): nothing was sent.", true);
        el.result.textContent = "Nothing was sent to the third party: the router config says consent = \"never\".";
        return;
      }
      if (!(await askConsent(outbound, "third_party"))) {
        setStatus("Refused: nothing was sent.");
        el.result.textContent = "Nothing was sent to the third party.";
        return;
      }
      consent = true;
    }
    controller = new AbortController();
    busy(true);
    const told = missing ? offReason(missing) + ", so nothing is sent there: it runs where it can (auto). " : "";
    setStatus(told + (feature === "chat" ? "Streaming…" : "Working…"));
    const started = performance.now();
    try {
      let out = feature === "chat" ? await runChat(text, runTarget, consent) : await runFeature(feature, text, runTarget, consent);
      const consentTier = out.error && /private_cloud/.test(out.error.msg) ? "private_cloud" : "third_party";
      if (out.error && !consent && /consent/i.test(out.error.code + " " + out.error.msg) && isConfigured(consentTier)) {
        // The router wanted a tier that needs consent for an "auto" request: ask, then retry with it.
        busy(false);
        const outbound = await outboundFor(text, consentTier);
        if (!(await askConsent(outbound, consentTier))) {
          setStatus("Refused: nothing was sent.");
          el.result.textContent = "Nothing was sent to the " + TIER_LABEL[consentTier] + ".";
          return;
        }
        busy(true);
        out = feature === "chat" ? await runChat(text, runTarget, true) : await runFeature(feature, text, runTarget, true);
      }
      const where = el.route.tier.textContent;
      const ran = !missing ? "" : offReason(missing) + ", so nothing was sent there: "
        + (out.error ? "running it where it can (auto) failed. " : "it ran where it could ("
          + (where && where !== "–" ? where : "auto") + "). ");
      if (out.error) {
        setStatus(ran + "Error" + (out.error.code ? " (" + out.error.code + ")" : "") + ": " + out.error.msg, true);
      } else {
        setStatus(ran + "Done in " + ((performance.now() - started) / 1000).toFixed(1) + " s.");
      }
    } catch (e) {
      const unchecked = el.result.classList.contains("draft") ? " The draft shown was never checked." : "";
      setStatus(told + (e.name === "AbortError" ? "Stopped." + unchecked : "Error: " + e.message), true);
    } finally {
      busy(false);
      controller = null;
      refreshRecent();
    }
  }

  el.run.addEventListener("click", run);
  el.stop.addEventListener("click", () => { if (controller) controller.abort(); });
  el.input.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) run(); });

  // ------------------------------------------------------------------ feature options

  let chatTarget = el.target.value;
  function syncOptions() {
    const f = el.feature.value;
    // Only chat is routed; the features always run on the device.
    if (f === "chat") {
      if (el.target.disabled) { el.target.disabled = false; el.target.value = chatTarget; }
    } else if (!el.target.disabled) {
      chatTarget = el.target.value;
      el.target.value = "device";
      el.target.disabled = true;
    }
    el.target.title = f === "chat" ? "" : "Features always run on the device";
    el.toneField.hidden = f !== "rewrite";
    el.formField.hidden = f !== "summarize";
    el.wordingField.hidden = f !== "proofread";
    el.inputLabel.textContent = f === "notifications" ? "Notifications (one per line: App: Sender: message, or JSON)"
      : f === "replies" ? "Message to reply to" : f === "emoji" ? "Describe the emoji (e.g. a cat wearing sunglasses)"
      : f === "ask" ? "Question about your mail, calendar and files (e.g. When is my dentist appointment?)"
      : f === "chat" ? "Message" : "Text";
  }
  el.feature.addEventListener("change", syncOptions);
  syncOptions();

  // ------------------------------------------------------------------ redaction preview

  function renderPreview(report) {
    el.preview.textContent = "";
    for (const t of report.tiers || []) {
      const card = document.createElement("div");
      card.className = "tier-card";
      card.dataset.tier = t.tier;
      const head = document.createElement("header");
      head.appendChild(pill(t.tier));
      const verdict = document.createElement("span");
      verdict.className = "verdict" + (t.must_stay_on_device ? " stay" : "");
      verdict.textContent = t.tier === "device" ? "stays on the device"
        : !isConfigured(t.tier) ? (deviceOnly() ? "off (device-only)" : NOT_IN_PREVIEW[t.tier])
          + ": nothing goes there (it would see this)"
        : t.must_stay_on_device ? "must stay on device (" + (t.stay_reasons || []).join(", ") + ")"
        : "may leave, redacted" + (t.consent_required ? " · needs consent" : "");
      head.appendChild(verdict);
      card.appendChild(head);
      const pre = document.createElement("pre");
      pre.className = "payload";
      if (t.payload == null) pre.textContent = "(nothing leaves)";
      else renderPayload(pre, t.payload);
      card.appendChild(pre);
      if ((t.entities || []).length) {
        const ents = document.createElement("div");
        ents.className = "muted small";
        ents.textContent = t.entities.map((e) => e.entity_type + " ×" + e.count + " → " + e.action).join(", ");
        card.appendChild(ents);
      }
      el.preview.appendChild(card);
    }
  }

  let scanTimer = null, scanSeq = 0;
  function schedulePreview() {
    clearTimeout(scanTimer);
    scanTimer = setTimeout(async () => {
      const text = el.input.value;
      const seq = ++scanSeq;
      if (!text.trim()) { el.preview.textContent = ""; el.previewState.textContent = ""; return; }
      el.previewState.textContent = "scanning…";
      try {
        const report = await scan(text);
        if (seq !== scanSeq) return; // a newer scan is on its way
        renderPreview(report);
        el.previewState.textContent = "";
      } catch (e) {
        if (seq === scanSeq) el.previewState.textContent = "(preview unavailable: " + e.message + ")";
      }
    }, SCAN_DEBOUNCE_MS);
  }
  el.input.addEventListener("input", schedulePreview);

  // ------------------------------------------------------------------ recent decisions

  function entriesOf(body) {
    if (Array.isArray(body)) return body;
    for (const k of ["decisions", "recent", "entries", "data", "items"]) if (body && Array.isArray(body[k])) return body[k];
    return [];
  }

  async function refreshRecent() {
    let body;
    try {
      const resp = await fetch("/v1/route/recent", { cache: "no-store" });
      if (!resp.ok) return;
      body = await resp.json();
    } catch (_) { return; }
    const entries = entriesOf(body).slice();
    entries.sort((a, b) => (b.ts || 0) - (a.ts || 0));
    el.recent.textContent = "";
    for (const e of entries.slice(0, 25)) {
      const li = document.createElement("li");
      li.className = "decision";
      const when = document.createElement("span");
      when.className = "when";
      const ts = typeof e.ts === "number" ? new Date(e.ts * 1000) : (e.ts ? new Date(e.ts) : null);
      when.textContent = ts && !isNaN(ts) ? ts.toLocaleTimeString() + " " : "";
      li.appendChild(when);
      li.appendChild(pill(e.tier));
      const rest = [e.feature, e.rule || e.reason].filter(Boolean).join(" · ");
      const extra = [];
      if (typeof e.latency_ms === "number") extra.push(Math.round(e.latency_ms) + " ms");
      if (e.degraded) extra.push("degraded");
      if (e.escalated) extra.push("escalated");
      if (e.consent) extra.push("consent " + e.consent);
      li.appendChild(document.createTextNode(" " + rest + (extra.length ? " (" + extra.join(", ") + ")" : "")));
      el.recent.appendChild(li);
    }
    if (!entries.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "No decisions yet.";
      el.recent.appendChild(li);
    }
  }
  loadConfigured();
  refreshRecent();
  setInterval(refreshRecent, RECENT_EVERY_MS);
  if (el.input.value.trim()) schedulePreview();
})();
