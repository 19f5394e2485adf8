/** CONNECTOR_VERSION is this package's version, sent in HELLO as the `agent` string. */
export const CONNECTOR_VERSION = '0.1.0';
