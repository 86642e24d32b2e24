// Entry point for `node --import`: the SDK is up before the gateway's own modules load.
import { startTelemetry } from './sdk.js';

startTelemetry();
