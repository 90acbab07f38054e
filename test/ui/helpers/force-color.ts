// Import first: chalk decides its colour level when it loads, and a test worker's stdout is not a
// terminal. The frame tests assert on colour codes, so colour is forced on for them.
process.env.FORCE_COLOR = '1';
