// The playground page: one conversation per (platform, user). No secret ever reaches this file:
// the server signs and encrypts every request; we only say who typed or clicked what.
(function () {
  "use strict";
  const $ = (sel) => document.querySelector(sel);
  const platforms = JSON.parse(document.body.dataset.platforms || "[]");
  const rules = JSON.parse(document.body.dataset.rules || "{}");
  const params = new URLSearchParams(location.search);
  const ROLE_LABEL = { employee: "员工", manager: "经理", hr: "HR", admin: "管理员" };
  const DTMD = "dtmd://dingtalkclient/sendMessage?content=";
  const state = { platform: params.get("platform") || platforms[0], user: params.get("user") || "zhangsan", users: [] };
  const convos = {};

  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }
  async function api(path, body) {
    const opts = body ? { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) } : {};
    const resp = await fetch("/playground/api/" + path, opts);
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new Error(data.error || ("HTTP " + resp.status));
    return data;
  }
  function convo() {
    const key = state.platform + ":" + state.user;
    if (!convos[key]) {
      const el = document.createElement("div");
      el.className = "convo";
      el.dataset.key = key;
      $("#messages").appendChild(el);
      convos[key] = { el: el, after: 0 };
    }
    return convos[key];
  }
  function scroll() { const m = $("#messages"); m.scrollTop = m.scrollHeight; }

  function add(kind, content, meta) {
    const row = document.createElement("div");
    row.className = "msg " + kind;
    if (kind !== "system") {
      const av = document.createElement("span");
      av.className = "avatar " + (kind === "me" ? "me" : "bot");
      av.textContent = kind === "me" ? (currentName() || "我").slice(-1) : "积";
      row.appendChild(av);
    }
    const col = document.createElement("div");
    if (meta) { const m = document.createElement("div"); m.className = "meta"; m.textContent = meta; col.appendChild(m); }
    const bubble = document.createElement("div");
    bubble.className = "bubble";
    if (typeof content === "string") bubble.textContent = content; else bubble.appendChild(content);
    col.appendChild(bubble);
    row.appendChild(col);
    convo().el.appendChild(row);
    scroll();
    return col;
  }
  function attachRequest(col, shown) {
    if (!shown) return;
    const d = document.createElement("details");
    d.className = "req";
    d.innerHTML = "<summary>签名请求 signed request</summary><pre></pre>";
    d.querySelector("pre").textContent = JSON.stringify(shown, null, 2);
    col.appendChild(d);
  }
  function currentName() {
    const u = state.users.find((x) => x.user === state.user);
    return u ? u.name : state.user;
  }

  // ---- DingTalk: markdown with dtmd links (a click sends the command as the user) ----
  function inline(text) {
    let html = esc(text).replace(/\*\*(.+?)\*\*/g, "<b>$1</b>");
    return html.replace(/\[([^\]]+)\]\(([^)\s]+)\)/g, (all, label, url) => {
      const raw = url.replace(/&amp;/g, "&");
      if (raw.startsWith(DTMD)) {
        const cmd = decodeURIComponent(raw.slice(DTMD.length));
        return '<a class="dtmd card-button" data-cmd="' + esc(cmd) + '">' + label + "</a>";
      }
      return /^https?:\/\//.test(raw) ? '<a href="' + url + '" target="_blank" rel="noopener">' + label + "</a>" : label;
    });
  }
  function dingtalkMarkdown(text) {
    const card = document.createElement("div");
    card.className = "dt-card";
    card.innerHTML = String(text).split(/\n{2,}/).map((block) => {
      if (block.startsWith("#### ")) return "<h4>" + inline(block.slice(5)) + "</h4>";
      if (block.startsWith("> ")) return "<blockquote>" + inline(block.slice(2)).replace(/\n/g, "<br>") + "</blockquote>";
      return "<p>" + inline(block).replace(/\n/g, "<br>") + "</p>";
    }).join("");
    card.querySelectorAll("a.dtmd").forEach((a) => a.addEventListener("click", () => send(a.dataset.cmd)));
    return card;
  }
  function dingtalkMessage(msg, meta) {
    let type = msg.msgtype, md = msg.markdown, text = msg.text && msg.text.content;
    if (msg.msgKey) {  // robot API: msgKey + msgParam (a JSON string)
      const p = typeof msg.msgParam === "string" ? JSON.parse(msg.msgParam) : (msg.msgParam || {});
      type = msg.msgKey === "sampleMarkdown" ? "markdown" : "text";
      md = { title: p.title, text: p.text };
      text = p.content;
    }
    if (type === "markdown") return add("bot", dingtalkMarkdown(md.text), meta);
    if (type === "text") return add("bot", text || "", meta);
    return add("bot", JSON.stringify(msg, null, 2), meta);
  }

  // ---- WeCom: template cards whose buttons post template_card_event clicks ----
  function wecomCard(tc) {
    const card = document.createElement("div");
    card.className = "wc-card";
    card.dataset.taskId = tc.task_id || "";
    const mt = tc.main_title || {};
    let html = '<div class="wc-source">积分助手</div><div class="wc-title">' + esc(mt.title || "") + "</div>";
    if (mt.desc) html += '<div class="wc-desc">' + esc(mt.desc) + "</div>";
    if (tc.sub_title_text) html += '<div class="wc-sub">' + esc(tc.sub_title_text) + "</div>";
    (tc.horizontal_content_list || []).forEach((kv) => {
      html += '<div class="wc-kv"><span>' + esc(kv.keyname) + "</span><span>" + esc(kv.value || "") + "</span></div>";
    });
    html += '<div class="wc-buttons"></div>';
    card.innerHTML = html;
    const box = card.querySelector(".wc-buttons");
    (tc.button_list || []).forEach((b) => {
      const btn = document.createElement("button");
      btn.type = "button";
      btn.className = "card-button s" + (b.style || 1);
      btn.textContent = b.text;
      btn.dataset.key = b.key;
      btn.addEventListener("click", () => clickWeCom(card, btn));
      box.appendChild(btn);
    });
    return card;
  }
  function greyOut(card, clicked, name) {
    card.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    if (clicked && name) clicked.textContent = name;
    else if (name) { const first = card.querySelector("button"); if (first) first.textContent = name; }
  }
  async function clickWeCom(card, btn) {
    const body = { platform: "wecom", user: state.user, key: btn.dataset.key, task_id: card.dataset.taskId };
    add("system", currentName() + " 点击了「" + btn.textContent + "」");
    try {
      const res = await api("click", body);
      if (res.reply && res.reply.msgtype === "update_button") greyOut(card, btn, res.reply.replace_name);
      else if (res.reply) add("bot", res.reply.content || "");
      if (res.status !== 200) add("system", "回调返回 HTTP " + res.status);
    } catch (e) { add("system", "出错：" + e.message); }
  }
  function wecomMessage(m) {
    const body = m.body;
    if (m.kind === "update_template_card") {
      const card = convo().el.querySelector('.wc-card[data-task-id="' + CSS.escape(m.task_id || "") + '"]');
      if (card) greyOut(card, null, (body.button || {}).replace_name);
      return;
    }
    if (body.msgtype === "template_card") return add("bot", wecomCard(body.template_card || {}), "应用消息");
    if (body.msgtype === "text") return add("bot", (body.text || {}).content || "", "应用消息");
    if (body.msgtype === "markdown") return add("bot", (body.markdown || {}).content || "", "应用消息");
    return add("bot", JSON.stringify(body, null, 2), "应用消息");
  }

  // ---- sending and polling ----
  async function send(text) {
    text = (text || "").trim();
    if (!text) return;
    const col = add("me", text);
    try {
      const res = await api("send", { platform: state.platform, user: state.user, text: text });
      attachRequest(col, res.request);
      if (res.status !== 200) add("system", "回调返回 HTTP " + res.status);
      if (!res.reply) return;
      if (state.platform === "dingtalk") dingtalkMessage(res.reply, "");
      else add("bot", res.reply.content || res.reply.replace_name || "");
    } catch (e) { add("system", "出错：" + e.message); }
  }
  let pollDelay = 1000;
  async function poll() {
    const c = convo();
    try {
      const q = new URLSearchParams({ platform: state.platform, user: state.user, after: String(c.after) });
      const data = await api("messages?" + q.toString());
      data.messages.forEach((m) => {
        c.after = Math.max(c.after, m.seq);
        if (m.platform === "dingtalk") dingtalkMessage(m.body, "机器人消息");
        else wecomMessage(m);
      });
      pollDelay = 1000;
    } catch (e) {  // the server may be restarting: try again, less and less often, so the console stays quiet
      pollDelay = Math.min(pollDelay * 2, 30000);
    }
    setTimeout(poll, document.hidden ? Math.max(pollDelay, 5000) : pollDelay);
  }

  async function simulate(what) {
    const body = { platform: state.platform, user: state.user, rule: $("#rule").value };
    try {
      const res = await api("simulate/" + what, body);
      const label = what === "approval" ? "审批通过（" + body.rule + "）" : "员工离职";
      $("#sim-result").textContent = "已发送：" + label + " → HTTP " + res.status + (res.ok ? "，平台确认 success" : "");
      add("system", "模拟事件：" + currentName() + " " + label);
    } catch (e) { $("#sim-result").textContent = "出错：" + e.message; }
  }

  // ---- controls ----
  async function loadUsers() {
    const data = await api("users?platform=" + state.platform);
    state.users = data.users;
    const sel = $("#user");
    sel.innerHTML = "";
    ["employee", "manager", "hr", "admin"].forEach((role) => {
      const group = document.createElement("optgroup");
      group.label = ROLE_LABEL[role];
      data.users.filter((u) => u.role === role).forEach((u) => {
        const o = document.createElement("option");
        o.value = u.user;
        o.textContent = u.name + "（" + u.user + "）· " + u.department;
        group.appendChild(o);
      });
      if (group.children.length) sel.appendChild(group);
    });
    if (!data.users.some((u) => u.user === state.user) && data.users.length) state.user = data.users[0].user;
    sel.value = state.user;
    showUser();
  }
  function showUser() {
    const u = state.users.find((x) => x.user === state.user);
    $("#user-info").textContent = u ? "工号 " + u.employee_no + " · " + ROLE_LABEL[u.role] + " · " + u.department : "";
    $("#chat-sub").textContent = (state.platform === "dingtalk" ? "钉钉单聊" : "企业微信应用") + " · 你是 " + currentName();
    Object.values(convos).forEach((c) => { c.el.hidden = true; });
    convo().el.hidden = false;
    scroll();
  }
  function setPlatform(p) {
    state.platform = p;
    document.body.className = p;
    document.querySelectorAll("#platform button").forEach((b) => b.classList.toggle("on", b.dataset.platform === p));
    $("#rule").innerHTML = (rules[p] || []).map((r) => "<option>" + esc(r) + "</option>").join("");
    $("#simulate-approval").disabled = !(rules[p] || []).length;
    loadUsers();
  }
  document.querySelectorAll("#platform button").forEach((b) => b.addEventListener("click", () => setPlatform(b.dataset.platform)));
  $("#user").addEventListener("change", (e) => { state.user = e.target.value; showUser(); });
  $("#composer").addEventListener("submit", (e) => { e.preventDefault(); const v = $("#input").value; $("#input").value = ""; send(v); });
  document.querySelectorAll("#chips button").forEach((b) => b.addEventListener("click", () => send(b.textContent)));
  $("#simulate-approval").addEventListener("click", () => simulate("approval"));
  $("#simulate-leave").addEventListener("click", () => {
    if (confirm("模拟 " + currentName() + " 离职？其聊天账号会被解绑、积分冻结。")) simulate("leave");
  });
  setPlatform(platforms.includes(state.platform) ? state.platform : platforms[0]);
  poll();
})();
