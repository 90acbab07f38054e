import { describe, expect, it } from 'vitest';
import React from 'react';
import { render } from 'ink-testing-library';
import { Details } from '../../src/ui/Details.js';

describe('details pane', () => {
  it('keeps a space between every label and its value, however long the label', () => {
    const lines = [
      { label: 'process', value: 'curl (pid 17429)' },
      { label: 'agent identity', value: 'package:curl:/usr/bin/curl' },
      { label: 'decided by', value: 'nats:alice@hub' },
    ];
    const { lastFrame, unmount } = render(<Details title="flow details" lines={lines} height={10} scroll={0} ascii={false} />);
    const frame = lastFrame() ?? '';
    unmount();
    expect(frame).toContain('agent identity package:curl:/usr/bin/curl');
    // Values start in one column.
    const columns = frame.split('\n').slice(1).map((l) => l.search(/(curl \(|package:|nats:)/));
    expect(new Set(columns).size).toBe(1);
  });
});
