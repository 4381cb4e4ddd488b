module.exports = {
  skipFiles: ['mocks/'],
  istanbulReporter: ['text-summary', 'json-summary', 'lcov'],
};
