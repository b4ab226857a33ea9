#include "common/clock.h"

namespace weft {
RealClock& RealClock::Get() {
  static RealClock clock;
  return clock;
}
}  // namespace weft
