// lmforge chat page: talks to this server's OpenAI-compatible API and keeps the
// conversations in the browser's local storage.
//
// Safety rule for the whole file: text from the model or the user is only ever put into
// the page as text nodes (textContent / createTextNode). The Markdown subset below builds
// elements with createElement; nothing here assigns innerHTML, so a model answer such as
// `<img src=x onerror=...>` shows as those characters.
"use strict";

(() => {
  const CHATS_KEY = "lmforge.chats.v1";
  const SETTINGS_KEY = "lmforge.settings.v1";
  const TITLE_CHARS = 48;

  // --- Markdown subset: paragraphs, line breaks, `code`, ```fences```, **bold**, lists --------

  const FENCE_OPEN = /^ {0,3}(`{3,})\s*([^`\s]*)[^`]*$/;
  const BULLET = /^ {0,3}([-*+])\s+(.*)$/;
  const ORDERED = /^ {0,3}(\d{1,9})[.)]\s+(.*)$/;

  /** The DOM (a DocumentFragment) of `text` read as the Markdown subset. */
  function renderMarkdown(text) {
    const frag = document.createDocumentFragment();
    const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      const fence = FENCE_OPEN.exec(line);
      if (fence) {
        i = renderFence(lines, i, fence, frag);
      } else if (line.trim() === "") {
        i += 1;
      } else if (BULLET.test(line) || ORDERED.test(line)) {
        i = renderList(lines, i, frag);
      } else {
        i = renderParagraph(lines, i, frag);
      }
    }
    return frag;
  }

  // A fenced block runs to a closing fence at least as long as the opening one, or to the
  // end of the text (so a block still streaming in shows as code already).
  function renderFence(lines, start, fence, parent) {
    const closing = new RegExp("^ {0,3}`{" + fence[1].length + ",}\\s*$");
    const body = [];
    let i = start + 1;
    while (i < lines.length && !closing.test(lines[i])) {
      body.push(lines[i]);
      i += 1;
    }
    const pre = document.createElement("pre");
    const code = document.createElement("code");
    if (fence[2]) code.dataset.lang = fence[2];
    code.textContent = body.join("\n");
    pre.appendChild(code);
    parent.appendChild(pre);
    return i + 1; // past the closing fence (or the end)
  }

  function startsBlock(line) {
    return line.trim() === "" || FENCE_OPEN.test(line) || BULLET.test(line) || ORDERED.test(line);
  }

  // Consecutive items of one kind (bullets, or numbers) form a list; an indented line that
  // is not an item continues the item above it.
  function renderList(lines, start, parent) {
    const ordered = !BULLET.test(lines[start]);
    const pattern = ordered ? ORDERED : BULLET;
    const list = document.createElement(ordered ? "ol" : "ul");
    if (ordered) {
      const first = Number(ORDERED.exec(lines[start])[1]);
      if (first !== 1) list.start = first;
    }
    let i = start;
    while (i < lines.length) {
      const m = pattern.exec(lines[i]);
      if (!m) break;
      const itemLines = [m[2]];
      i += 1;
      while (i < lines.length && /^\s{2,}\S/.test(lines[i]) && !startsBlock(lines[i])) {
        itemLines.push(lines[i].trim());
        i += 1;
      }
      const li = document.createElement("li");
      renderLines(itemLines, li);
      list.appendChild(li);
    }
    parent.appendChild(list);
    return i;
  }

  function renderParagraph(lines, start, parent) {
    const paraLines = [];
    let i = start;
    while (i < lines.length && (i === start || !startsBlock(lines[i]))) {
      paraLines.push(lines[i]);
      i += 1;
    }
    const p = document.createElement("p");
    renderLines(paraLines, p);
    parent.appendChild(p);
    return i;
  }

  // Lines of one block: a single newline is a line break (chat output is not reflowed prose).
  function renderLines(lines, parent) {
    lines.forEach((line, k) => {
      if (k > 0) parent.appendChild(document.createElement("br"));
      renderInline(line, parent);
    });
  }

  // `code` spans first (a backtick run closed by a run of the same length), then **bold**
  // in the text between them; anything unmatched stays literal.
  function renderInline(text, parent) {
    let rest = text;
    while (rest.length > 0) {
      const open = /`+/.exec(rest);
      if (!open) break;
      const ticks = open[0];
      const after = rest.slice(open.index + ticks.length);
      const close = new RegExp("(^|[^`])" + ticks + "(?!`)").exec(after);
      if (!close) {
        renderBold(rest.slice(0, open.index + ticks.length), parent);
        rest = after;
        continue;
      }
      const end = close.index + close[1].length;
      renderBold(rest.slice(0, open.index), parent);
      const code = document.createElement("code");
      code.textContent = after.slice(0, end);
      parent.appendChild(code);
      rest = after.slice(end + ticks.length);
    }
    renderBold(rest, parent);
  }

  function renderBold(text, parent) {
    const bold = /\*\*(?=\S)([\s\S]*?\S)\*\*/g;
    let last = 0;
    let m;
    while ((m = bold.exec(text)) !== null) {
      if (m.index > last) parent.appendChild(document.createTextNode(text.slice(last, m.index)));
      const strong = document.createElement("strong");
      strong.textContent = m[1];
      parent.appendChild(strong);
      last = m.index + m[0].length;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  // --- Server-sent events ------------------------------------------------------------------

  /** Yields, per network read, the list of the `data:` payloads of the events it completed
   * (one render per read, however many tokens it carried). */
  async function* sseBatches(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      const batch = [];
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        let line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line.endsWith("\r")) line = line.slice(0, -1);
        if (line === "") {
          if (data.length) batch.push(data.join("\n"));
          data = [];
        } else if (line.startsWith("data:")) {
          data.push(fieldValue(line));
        } // other fields and ":" comments (keep-alives) carry nothing for us
      }
      if (batch.length) yield batch;
    }
    if (buffer.startsWith("data:")) data.push(fieldValue(buffer));
    if (data.length) yield [data.join("\n")];
  }

  // "data: x" and "data:x" both carry "x" (one leading space is part of the syntax).
  function fieldValue(line) {
    const v = line.slice(line.indexOf(":") + 1);
    return v.startsWith(" ") ? v.slice(1) : v;
  }

  // --- Storage -----------------------------------------------------------------------------

  function readJSON(key, fallback) {
    try {
      const raw = localStorage.getItem(key);
      return raw ? JSON.parse(raw) : fallback;
    } catch (e) {
      return fallback; // storage disabled or a corrupt entry: start clean rather than fail
    }
  }

  function writeJSON(key, value) {
    try {
      localStorage.setItem(key, JSON.stringify(value));
      return true;
    } catch (e) {
      showBanner(`Could not save to this browser's local storage (${e.name}); ` +
        "delete old chats to free space.");
      return false;
    }
  }

  function loadChats() {
    const chats = readJSON(CHATS_KEY, []);
    if (!Array.isArray(chats)) return [];
    return chats.filter((c) => c && typeof c.id === "string" && Array.isArray(c.messages));
  }

  function newId() {
    return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10);
  }

  function titleOf(text) {
    const first = text.trim().split("\n")[0].trim();
    return first.length > TITLE_CHARS ? first.slice(0, TITLE_CHARS - 1) + "…" : first || "Chat";
  }

  // --- Page state --------------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);
  const el = {
    banner: $("banner"), messages: $("messages"), empty: $("empty"), input: $("input"),
    composer: $("composer"), send: $("send"), stop: $("stop"), newChat: $("new-chat"),
    chatList: $("chat-list"), noChats: $("no-chats"), system: $("system-prompt"),
    temperature: $("temperature"), maxTokens: $("max-tokens"), apiKey: $("api-key"),
    modelName: $("model-name"), sidebar: $("sidebar"), toggle: $("toggle-sidebar"),
  };

  const state = {
    chats: loadChats(),
    current: null, // the open chat, or null for a new (not yet saved) one
    model: null, // {id, chat} from GET /v1/models
    stream: null, // {controller, chat, message, node} while an answer streams
  };

  const settings = Object.assign(
    { temperature: "0.7", maxTokens: "", system: "", apiKey: "", current: null },
    readJSON(SETTINGS_KEY, {}),
  );

  function saveSettings() {
    const keyChanged = settings.apiKey !== el.apiKey.value;
    settings.temperature = el.temperature.value;
    settings.maxTokens = el.maxTokens.value;
    settings.system = el.system.value;
    settings.apiKey = el.apiKey.value;
    settings.current = state.current ? state.current.id : null;
    writeJSON(SETTINGS_KEY, settings);
    if (keyChanged) loadModel(); // the model list may have been refused without the key
  }

  function saveChats() {
    writeJSON(CHATS_KEY, state.chats);
  }

  function showBanner(text) {
    el.banner.textContent = text;
    el.banner.hidden = !text;
  }

  // --- Rendering ---------------------------------------------------------------------------

  const ROLE_LABEL = { user: "You", assistant: "Model", error: "Error" };
  const NOTE = {
    length: "Stopped at the token limit.",
    stopped: "Stopped.",
  };

  function messageNode(message) {
    const node = document.createElement("article");
    node.className = `msg msg-${message.role}`;
    node.dataset.role = message.role;
    const label = document.createElement("h3");
    label.className = "msg-role";
    label.textContent = ROLE_LABEL[message.role] || message.role;
    const body = document.createElement("div");
    body.className = "msg-body";
    const note = document.createElement("p");
    note.className = "msg-note";
    node.append(label, body, note);
    fillMessage(node, message);
    return node;
  }

  function fillMessage(node, message) {
    const body = node.querySelector(".msg-body");
    if (message.role === "assistant") {
      body.replaceChildren(renderMarkdown(message.content));
    } else {
      body.textContent = message.content; // user text and errors: shown exactly as typed
    }
    const phase = message.state || "done";
    node.dataset.state = phase;
    node.setAttribute("aria-busy", phase === "streaming" ? "true" : "false");
    const note = node.querySelector(".msg-note");
    note.textContent = NOTE[message.finish] || "";
    note.hidden = !note.textContent;
  }

  function nearBottom() {
    const m = el.messages;
    return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
  }

  function scrollToEnd() {
    el.messages.scrollTop = el.messages.scrollHeight;
  }

  function renderMessages() {
    const chat = state.current;
    const nodes = chat ? chat.messages.map(messageNode) : [];
    el.messages.replaceChildren(...nodes);
    el.empty.hidden = nodes.length > 0;
    scrollToEnd();
  }

  function renderChatList() {
    const items = [...state.chats]
      .sort((a, b) => (b.updated || 0) - (a.updated || 0))
      .map((chat) => {
        const li = document.createElement("li");
        li.className = "chat-item";
        const open = document.createElement("button");
        open.type = "button";
        open.className = "chat-open";
        open.textContent = chat.title || "Chat";
        open.title = chat.title || "Chat";
        if (state.current && state.current.id === chat.id) {
          open.setAttribute("aria-current", "true");
        }
        open.addEventListener("click", () => openChat(chat.id));
        const del = document.createElement("button");
        del.type = "button";
        del.className = "chat-delete";
        del.textContent = "×";
        del.setAttribute("aria-label", `Delete chat: ${chat.title || "Chat"}`);
        del.addEventListener("click", () => deleteChat(chat.id));
        li.append(open, del);
        return li;
      });
    el.chatList.replaceChildren(...items);
    el.noChats.hidden = items.length > 0;
  }

  function setStreaming(on) {
    el.send.hidden = on;
    el.stop.hidden = !on;
    el.composer.classList.toggle("streaming", on);
  }

  function setChatAvailable(available, reason) {
    el.input.disabled = !available;
    el.send.disabled = !available;
    if (!available) showBanner(reason);
  }

  // --- Chats -------------------------------------------------------------------------------

  function openChat(id) {
    stopStream();
    state.current = state.chats.find((c) => c.id === id) || null;
    if (state.current && typeof state.current.system === "string") {
      el.system.value = state.current.system;
    }
    saveSettings();
    renderMessages();
    renderChatList();
    closeSidebar();
    el.input.focus();
  }

  function newChat() {
    stopStream();
    state.current = null;
    saveSettings();
    renderMessages();
    renderChatList();
    closeSidebar();
    el.input.value = "";
    el.input.focus();
  }

  function deleteChat(id) {
    const chat = state.chats.find((c) => c.id === id);
    if (!chat || !window.confirm(`Delete the chat “${chat.title}”?`)) return;
    if (state.stream && state.stream.chat === chat) stopStream();
    state.chats = state.chats.filter((c) => c !== chat);
    saveChats();
    if (state.current === chat) {
      state.current = null;
      renderMessages();
    }
    saveSettings();
    renderChatList();
  }

  // Another tab changed the saved chats: show its list, and its copy of the open chat.
  window.addEventListener("storage", (e) => {
    if (e.key !== CHATS_KEY || state.stream) return;
    state.chats = loadChats();
    const id = state.current && state.current.id;
    state.current = state.chats.find((c) => c.id === id) || null;
    renderMessages();
    renderChatList();
  });

  // --- Talking to the server ---------------------------------------------------------------

  function authHeaders() {
    const key = el.apiKey.value.trim();
    return key ? { Authorization: `Bearer ${key}` } : {};
  }

  /** The server's one-line reason for a failed response (OpenAI's error JSON, or the text). */
  async function errorText(response) {
    const raw = await response.text().catch(() => "");
    let message = "";
    try {
      const body = JSON.parse(raw);
      message = (body && body.error && body.error.message) || (body && body.detail) || "";
    } catch (e) {
      message = raw.trim().slice(0, 500);
    }
    let text = `${response.status} ${response.statusText}`.trim();
    if (message) text += `: ${message}`;
    if (response.status === 401) text += " (set the server's API key in Settings)";
    return text;
  }

  async function loadModel() {
    el.modelName.textContent = "connecting…";
    try {
      const response = await fetch("/v1/models", { headers: authHeaders() });
      if (!response.ok) {
        el.modelName.textContent = "no model";
        showBanner(`Could not read the model list: ${await errorText(response)}`);
        return;
      }
      const body = await response.json();
      const model = (body.data || [])[0];
      if (!model) {
        el.modelName.textContent = "no model";
        setChatAvailable(false, "The server lists no model.");
        return;
      }
      state.model = { id: String(model.id), chat: model.chat !== false };
      el.modelName.textContent = state.model.id;
      if (state.model.chat) {
        showBanner("");
        setChatAvailable(true);
      } else {
        setChatAvailable(false,
          `Chat is unavailable: ${state.model.id} is not a chat model (a pretrain-only run ` +
          "has no chat template). Serve an SFT, DPO, RS or PPO run for chat; " +
          "/v1/completions still works for plain text.");
      }
    } catch (e) {
      el.modelName.textContent = "offline";
      showBanner(`Could not reach the server (${e.message}).`);
    }
  }

  function requestBody(chat) {
    const messages = [];
    const system = el.system.value.trim();
    if (system) messages.push({ role: "system", content: system });
    for (const m of chat.messages) {
      // Errors are the page's own notes; an answer stopped before its first token is empty.
      if ((m.role === "user" || m.role === "assistant") && m.content) {
        messages.push({ role: m.role, content: m.content });
      }
    }
    const body = { messages, stream: true };
    if (state.model) body.model = state.model.id;
    const temperature = parseFloat(el.temperature.value);
    if (Number.isFinite(temperature)) body.temperature = temperature;
    const maxTokens = parseInt(el.maxTokens.value, 10);
    if (Number.isFinite(maxTokens)) body.max_tokens = maxTokens;
    return body;
  }

  function checkFields() {
    for (const field of [el.temperature, el.maxTokens]) {
      if (!field.checkValidity()) {
        const name = field.labels[0].textContent;
        return `${name}: ${field.validationMessage}`;
      }
    }
    return "";
  }

  function addMessage(chat, message) {
    chat.messages.push(message);
    chat.updated = Date.now();
    const node = messageNode(message);
    const follow = nearBottom();
    el.messages.appendChild(node);
    el.empty.hidden = true;
    if (follow || message.role === "user") scrollToEnd();
    return node;
  }

  async function send(text) {
    if (!state.current) {
      const chat = { id: newId(), title: titleOf(text), created: Date.now(), messages: [] };
      state.chats.push(chat);
      state.current = chat;
    }
    const chat = state.current;
    chat.system = el.system.value;
    addMessage(chat, { role: "user", content: text });
    const body = requestBody(chat);
    const answer = { role: "assistant", content: "", state: "streaming", finish: null };
    const node = addMessage(chat, answer);
    const controller = new AbortController();
    state.stream = { controller, chat, message: answer, node };
    saveChats();
    saveSettings();
    renderChatList();
    setStreaming(true);
    try {
      const response = await fetch("/v1/chat/completions", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream",
                   ...authHeaders() },
        body: JSON.stringify(body),
        signal: controller.signal,
      });
      if (!response.ok) throw new ServerError(await errorText(response));
      await readAnswer(response, answer, node);
      if (answer.state === "streaming") answer.state = "done";
    } catch (e) {
      if (e.name === "AbortError") {
        answer.state = "done";
        answer.finish = "stopped";
      } else {
        answer.state = "done";
        const text = e instanceof ServerError ? e.message : `Could not reach the server (${e.message}).`;
        dropIfEmpty(chat, answer, node);
        const errorNode = addMessage(chat, { role: "error", content: text });
        errorNode.setAttribute("role", "alert");
      }
    } finally {
      if (chat.messages.includes(answer)) fillMessage(node, answer);
      if (state.stream && state.stream.message === answer) state.stream = null;
      setStreaming(state.stream !== null);
      saveChats();
    }
  }

  class ServerError extends Error {}

  function dropIfEmpty(chat, answer, node) {
    if (answer.content) return;
    chat.messages.splice(chat.messages.indexOf(answer), 1);
    node.remove();
  }

  async function readAnswer(response, answer, node) {
    for await (const batch of sseBatches(response.body)) {
      for (const data of batch) {
        if (data === "[DONE]") return;
        let chunk;
        try {
          chunk = JSON.parse(data);
        } catch (e) {
          continue; // not JSON: nothing a chat answer carries
        }
        if (chunk.error) throw new ServerError(chunk.error.message || "the server failed");
        const choice = (chunk.choices || [])[0];
        if (!choice) continue;
        const delta = (choice.delta && choice.delta.content) || "";
        answer.content += delta;
        if (choice.finish_reason) answer.finish = choice.finish_reason;
      }
      const follow = nearBottom();
      fillMessage(node, answer);
      if (follow) scrollToEnd();
    }
  }

  // Abort the request: the server sees the disconnect and frees the slot.
  function stopStream() {
    if (state.stream) state.stream.controller.abort();
  }

  // --- Events ------------------------------------------------------------------------------

  // Leaving mid-answer keeps what had arrived (saved chats are otherwise written at the
  // start and the end of each answer).
  window.addEventListener("pagehide", () => {
    if (!state.stream) return;
    state.stream.message.state = "done";
    state.stream.message.finish = "stopped";
    saveChats();
  });

  el.composer.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = el.input.value;
    if (!text.trim() || state.stream || el.input.disabled) return;
    const problem = checkFields();
    if (problem) {
      showBanner(problem); // the message stays in the box, to send once it is fixed
      return;
    }
    if (state.model && state.model.chat) showBanner(""); // an earlier field problem is fixed
    el.input.value = "";
    send(text);
  });

  el.input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && !e.altKey && !e.ctrlKey &&
        !e.metaKey) {
      e.preventDefault();
      el.composer.requestSubmit();
    } else if (e.key === "Escape" && state.stream) {
      e.preventDefault();
      stopStream();
    }
  });

  el.stop.addEventListener("click", () => {
    stopStream();
    el.input.focus();
  });
  el.newChat.addEventListener("click", newChat);
  // Enter in a settings field applies it; it never reloads the page.
  $("settings").addEventListener("submit", (e) => {
    e.preventDefault();
    saveSettings();
  });

  for (const field of [el.system, el.temperature, el.maxTokens]) {
    field.addEventListener("change", saveSettings);
  }
  el.apiKey.addEventListener("change", saveSettings);

  function closeSidebar() {
    el.sidebar.classList.remove("open");
    el.toggle.setAttribute("aria-expanded", "false");
  }

  el.toggle.addEventListener("click", () => {
    const open = el.sidebar.classList.toggle("open");
    el.toggle.setAttribute("aria-expanded", String(open));
  });

  // --- Start -------------------------------------------------------------------------------

  el.temperature.value = settings.temperature;
  el.maxTokens.value = settings.maxTokens;
  el.system.value = settings.system;
  el.apiKey.value = settings.apiKey;
  state.current = state.chats.find((c) => c.id === settings.current) || null;
  // An answer that was streaming when the page went away is kept as it was.
  for (const chat of state.chats) {
    for (const m of chat.messages) if (m.state === "streaming") m.state = "done";
  }
  renderMessages();
  renderChatList();
  loadModel();

  // For tests and the curious: the renderer and the SSE reader, read-only.
  window.lmforgeChat = Object.freeze({ renderMarkdown, sseBatches });
})();
