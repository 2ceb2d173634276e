// Small DOM helpers. Text from users only ever goes in as text nodes or
// textContent: nothing here parses HTML.

/**
 * Creates an element. `props`: `class`, `text` (textContent), `dataset`,
 * `on<event>` listeners, booleans (present or not) and other attributes.
 * Children are nodes or strings (inserted as text).
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child);
  }
  return el;
}

/** The element with this id. */
export const $ = (id) => document.getElementById(id);

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** A <time> element for an RFC 3339 time. */
export function timeEl(iso, cls = 'time') {
  const d = new Date(iso);
  return h('time', { datetime: iso, class: cls, title: d.toISOString(), text: dateTime.format(d) });
}

/**
 * Shows an API error beside the fields it names. `ids` maps API field names
 * to the ids of their error paragraphs (and `inputs` to their controls);
 * what names no shown field goes to `general`.
 */
export function showErrors(error, { fields = {}, general }) {
  clearErrors({ fields, general });
  const apiFields = { ...(error.fields || {}) };
  if (error.code === 'nickname_taken') apiFields.nickname = apiFields.nickname || error.message;
  if (error.code === 'email_taken') apiFields.email = apiFields.email || error.message;
  let shown = false;
  let first = null;
  for (const [name, message] of Object.entries(apiFields)) {
    const target = fields[name];
    if (!target) continue;
    const p = $(target.error);
    if (p) p.textContent = message;
    const input = target.input && $(target.input);
    if (input) {
      input.setAttribute('aria-invalid', 'true');
      first = first || input;
    }
    shown = true;
  }
  if (!shown && general) $(general).textContent = error.message || 'Something went wrong.';
  if (first) first.focus();
}

/** Empties the error paragraphs and clears aria-invalid. */
export function clearErrors({ fields = {}, general }) {
  for (const target of Object.values(fields)) {
    const p = $(target.error);
    if (p) p.textContent = '';
    const input = target.input && $(target.input);
    if (input) input.removeAttribute('aria-invalid');
  }
  if (general) $(general).textContent = '';
}

let toastTimer = null;

/** A short message in the page's alert region. */
export function toast(message) {
  const el = $('toast');
  el.textContent = message;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    el.hidden = true;
  }, 4000);
}

/** The CSS.escape of an id, for attribute selectors. */
export const sel = (value) => CSS.escape(value);
