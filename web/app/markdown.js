// Model output as Markdown, SAFELY: marked's lexer turns the text into tokens and this
// module builds elements from them. Nothing is ever parsed as HTML: raw HTML in the text
// (`<script>`, `<img onerror=…>`) becomes visible text, links keep only http(s)/mailto
// targets, and images are shown as links (nothing is loaded from a model's URL).
import { Lexer } from 'marked';
import { h } from './lib.js';

const SAFE_URL = /^(https?:|mailto:)/i;

function safeHref(href) {
  if (typeof href !== 'string') return null;
  const trimmed = href.trim();
  return SAFE_URL.test(trimmed) ? trimmed : null;
}

function inline(tokens, key = '') {
  if (!tokens) return null;
  return tokens.map((token, index) => inlineToken(token, `${key}${index}.`));
}

function inlineToken(token, key) {
  switch (token.type) {
    case 'text':
      return token.tokens ? inline(token.tokens, key) : token.text;
    case 'escape':
      return token.text;
    case 'strong':
      return h('strong', { key }, inline(token.tokens, key));
    case 'em':
      return h('em', { key }, inline(token.tokens, key));
    case 'del':
      return h('del', { key }, inline(token.tokens, key));
    case 'codespan':
      return h('code', { key }, token.text);
    case 'br':
      return h('br', { key });
    case 'link': {
      const href = safeHref(token.href);
      const label = inline(token.tokens, key);
      if (!href) return h('span', { key }, label);
      return h('a', { key, href, target: '_blank', rel: 'noopener noreferrer nofollow' }, label);
    }
    case 'image': {
      const href = safeHref(token.href);
      const label = `[image: ${token.text || token.href || ''}]`;
      if (!href) return h('span', { key, class: 'md-image' }, label);
      return h('a', { key, href, target: '_blank', rel: 'noopener noreferrer nofollow', class: 'md-image' }, label);
    }
    case 'html':
      return token.raw; // shown as text, never parsed
    default:
      return token.raw || '';
  }
}

function block(token, key) {
  switch (token.type) {
    case 'space':
    case 'def':
      return null;
    case 'heading':
      return h(`h${Math.min(6, Math.max(3, token.depth + 2))}`, { key }, inline(token.tokens, key));
    case 'paragraph':
      return h('p', { key }, inline(token.tokens, key));
    case 'text':
      return h('p', { key }, token.tokens ? inline(token.tokens, key) : token.text);
    case 'code':
      return h('pre', { key }, h('code', null, token.text));
    case 'blockquote':
      return h('blockquote', { key }, blocks(token.tokens, key));
    case 'hr':
      return h('hr', { key });
    case 'list': {
      const items = token.items.map((item, index) =>
        h('li', { key: index }, [
          item.task ? h('input', { type: 'checkbox', checked: !!item.checked, disabled: true, key: 'c' }) : null,
          // A tight list's items hold bare text: no paragraph margins.
          ...(item.tokens || []).map((t, i) =>
            t.type === 'text' ? h('span', { key: i }, t.tokens ? inline(t.tokens, `${key}${index}.${i}`) : t.text)
              : block(t, `${key}${index}.${i}`)),
        ]));
      const attrs = { key };
      if (token.ordered && token.start !== '' && token.start !== 1) attrs.start = Number(token.start) || 1;
      return h(token.ordered ? 'ol' : 'ul', attrs, items);
    }
    case 'table':
      return h('div', { key, class: 'md-table' }, h('table', null, [
        h('thead', { key: 'h' }, h('tr', null, token.header.map((cell, i) => h('th', { key: i }, inline(cell.tokens, `h${i}`))))),
        h('tbody', { key: 'b' }, token.rows.map((row, r) =>
          h('tr', { key: r }, row.map((cell, i) => h('td', { key: i }, inline(cell.tokens, `${r}.${i}`)))))),
      ]));
    case 'html':
      return h('p', { key, class: 'md-raw' }, token.raw);
    default:
      return h('p', { key }, token.raw || '');
  }
}

function blocks(tokens, key = '') {
  return tokens.map((token, index) => block(token, `${key}${index}:`));
}

/** Elements for `text` read as GitHub-flavoured Markdown. */
export function renderMarkdown(text) {
  let tokens;
  try {
    tokens = Lexer.lex(text || '', { gfm: true, breaks: false });
  } catch {
    return h('p', null, text);
  }
  return blocks(tokens);
}
