#include "actors/auto_deploy.hpp"
