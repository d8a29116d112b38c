// The one place the vendored libraries are imported from (names resolved by the import map
// in index.html): pages import from here, so an upgrade touches one file.
import { h, render, Fragment } from 'preact';
import { useEffect, useRef, useState, useMemo, useCallback } from 'preact/hooks';
import htm from 'htm';
import { signal, computed, effect, batch, useSignal, useComputed } from '@preact/signals';

export const html = htm.bind(h);
export {
  h, render, Fragment, useEffect, useRef, useState, useMemo, useCallback,
  signal, computed, effect, batch, useSignal, useComputed,
};
