// The framework subsystem table: every subsystem the app starts, in the
// order SPDK lists them; dependencies decide the final init order.

import type { FrameworkSubsystem } from '../../event/subsystem.ts';
import { accelSubsystem } from './accel.ts';
import { bdevSubsystem } from './bdev.ts';
import { iobufSubsystem } from './iobuf.ts';
import { nvmfSubsystem } from './nvmf.ts';
import { schedulerSubsystem } from './scheduler.ts';
import { sockSubsystem } from './sock.ts';

export const frameworkSubsystems: FrameworkSubsystem[] = [
  schedulerSubsystem,
  sockSubsystem,
  iobufSubsystem,
  accelSubsystem,
  bdevSubsystem,
  nvmfSubsystem,
];
