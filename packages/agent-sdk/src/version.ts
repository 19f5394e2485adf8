/** AGENT_SDK_VERSION is this package's version. */
export const AGENT_SDK_VERSION = '0.1.0';
